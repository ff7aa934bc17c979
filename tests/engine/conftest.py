"""Fixtures of the engine tests: the real HTTP receiver alerts are delivered to."""

from tests.support.alert_receiver import receiver

__all__ = ["receiver"]
