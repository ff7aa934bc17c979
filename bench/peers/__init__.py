"""The peers agentcron is measured against, each run by the same step protocol."""
