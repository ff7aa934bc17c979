"""Fixtures of the executor tests: the real HTTP endpoint an http agent posts to."""

from tests.support.http_target import server

__all__ = ["server"]
