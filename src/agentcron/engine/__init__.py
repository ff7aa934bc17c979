"""The node: ticker (triggers -> runs), dispatcher (runs -> executors), completions,
heartbeat, sweeper, pruner and drain. Each service has ``run_once`` and a loop around it."""
