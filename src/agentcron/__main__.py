"""``python -m agentcron``: the same as the ``agentcron`` command."""

from agentcron.cli import main

if __name__ == "__main__":
    main()
