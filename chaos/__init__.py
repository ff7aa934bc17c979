"""agentcron's fault-injection suite: ``python -m chaos <scenario> [--duration S]``.

Kills, pauses, database restarts, clock skew, rolling deploys and a soak, against real
``agentcron serve`` processes and a counting HTTP receiver; see the README's "Fault
injection" section for what is counted and the last long-form results.
"""
