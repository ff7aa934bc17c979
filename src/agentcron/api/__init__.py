"""The HTTP API served by a node."""
