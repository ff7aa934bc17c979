"""Rate-limit pools in the service layer: ``PoolInput`` (a pool as every front door states
it: the CLI, the API, the agents file's ``[pools.NAME]``) and ``PoolService``, which
validates one before the store is touched. What a pool means is ``rules/rates.py``; how it
is enforced, ``store/pools.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentcron.errors import ValidationError
from agentcron.models import Pool
from agentcron.rules.rates import check_limit, check_pool_name

if TYPE_CHECKING:
    from agentcron.store import Store


@dataclass(frozen=True)
class PoolInput:
    """A pool: at most ``requests_per_minute`` starts and ``tokens_per_minute`` tokens
    (reserved as an llm agent's ``max_tokens`` until its run reports usage) in any sliding
    minute, across every node and every agent naming it. At least one is required."""

    name: str
    requests_per_minute: Any = None
    tokens_per_minute: Any = None


class PoolService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def build(self, spec: PoolInput, source: str = "cli") -> Pool:
        """The pool ``spec`` states, or ``ValidationError`` naming the first bad field."""
        name = check_pool_name(spec.name, "name")
        requests = check_limit(spec.requests_per_minute, "requests_per_minute")
        tokens = check_limit(spec.tokens_per_minute, "tokens_per_minute")
        if requests is None and tokens is None:
            raise ValidationError("requests_per_minute", "a pool needs a limit",
                                  "give requests_per_minute, tokens_per_minute or both")
        return Pool(name=name, requests_per_minute=requests, tokens_per_minute=tokens,
                    source=source)

    def save(self, pool: Pool, now: datetime | None = None) -> Pool:
        """Create or replace a pool (built by ``build``)."""
        return self.store.save_pool(pool, now)

    def all(self) -> list[Pool]:
        """Every pool with what its sliding minute holds now."""
        return self.store.list_pools()

    def get(self, name: str) -> Pool:
        check_pool_name(name, "name")
        return self.store.list_pools(name=name)[0]

    def remove(self, name: str) -> None:
        check_pool_name(name, "name")
        self.store.delete_pool(name)


def pool_json(pool: Pool) -> dict[str, Any]:
    """A pool's document (the CLI's ``--json``, the API, the dashboard)."""
    return {
        "name": pool.name,
        "requests_per_minute": pool.requests_per_minute,
        "tokens_per_minute": pool.tokens_per_minute,
        "requests_in_window": pool.requests,
        "tokens_in_window": pool.tokens,
        "agents": list(pool.agents),
        "source": pool.source,
        "updated_at": pool.updated_at.isoformat() if pool.updated_at else None,
    }
