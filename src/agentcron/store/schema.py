"""The tables. Alembic migrations under ``migrations/`` create exactly this schema; a test
compares the two so they cannot drift."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from agentcron.store.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agents = Table(
    "agents",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("max_concurrency", Integer, nullable=False, server_default="1"),
    Column("timeout_s", Float, nullable=False),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    Column("zombie_timeout_s", Float),
    Column("retry_backoff_s", Float, nullable=False, server_default="2"),
    Column("description", Text),
    Column("source", String(16), nullable=False, server_default="cli"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # The agent's optional spending limits (``budgets.budget_to_json``), read with the row
    # that claiming locks, so checking a budget needs no extra read of the agent.
    Column("budget", JSON),
    # The circuit breaker's default for the agent's triggers (migration 0009).
    Column("pause_after_failures", Integer),
    # The agent's routing tags, a JSON list (``rules.routing``; migration 0011); null: none.
    Column("tags", JSON),
    # The agent's scheduling policy (``rules.scheduling``; migration 0012), read with the
    # row the guardrails lock; null: the defaults.
    Column("scheduling", JSON),
    # The concurrency key policy (``rules.keys.keys_to_json``; migration 0013). Null: none.
    Column("keys", JSON),
    # The rate-limit pool the agent draws from and its own rate (``rules.rates``;
    # migration 0014); null: none.
    Column("pool", String(100)),
    Column("rate", String(32)),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "agent", String(100), ForeignKey("agents.name", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(100)),
    Column("kind", String(16), nullable=False),
    Column("cron", String(200)),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("every_s", Float),
    Column("at", UTCDateTime),
    Column("anchor_at", UTCDateTime),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("jitter_s", Float, nullable=False, server_default="0"),
    Column("payload", JSON),
    Column("overlap", String(16), nullable=False, server_default="skip"),
    Column("catchup_window_s", Float, nullable=False, server_default="600"),
    Column("catchup_mode", String(16), nullable=False, server_default="coalesce"),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("next_fire_at", UTCDateTime),
    Column("last_fired_at", UTCDateTime),
    Column("missed_count", BigInteger, nullable=False, server_default="0"),
    Column("last_missed_at", UTCDateTime),
    Column("source", String(16), nullable=False, server_default="cli"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Webhook triggers only: the Standard Webhooks secret (whsec_...) deliveries are signed
    # with. Kept out of the Trigger dataclass so that no listing can show it.
    # Encrypted ("agentcron-fernet:...", ~170 characters) when AGENTCRON_SECRET_KEY is set:
    # TEXT on PostgreSQL; SQLite does not enforce a VARCHAR's length (migration 0005).
    Column("webhook_secret", String(100).with_variant(Text, "postgresql")),
    # Quarantine: a trigger whose firing keeps failing is left out of firing until fixed.
    Column("broken_at", UTCDateTime),
    Column("broken_reason", Text),
    # Fires the overlap policy skipped, counted here rather than kept as run rows forever.
    Column("skipped_count", BigInteger, nullable=False, server_default="0"),
    Column("last_skipped_at", UTCDateTime),
    # The circuit breaker (migration 0009): the threshold (else the agent's), the final
    # failures since the last success, and why agentcron paused the trigger.
    Column("pause_after_failures", Integer),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("paused_reason", Text),
    # Provenance and guardrails (migration 0012): who made the trigger (``cli``, ``file``,
    # ``python``, ``api:<token>``, ``mcp:<token>``, ``run:<run id>``), when an agent-made
    # one stops firing, and whether a person must approve it (``pending``/``approved``).
    Column("created_by", String(200), nullable=False, server_default="cli"),
    Column("expires_at", UTCDateTime),
    Column("approval", String(16)),
    UniqueConstraint("agent", "name", name="uq_triggers_agent_name"),
    # The ticker's only read: due, unpaused triggers in time order.
    Index(
        "ix_triggers_due",
        "next_fire_at",
        postgresql_where=text("NOT paused AND next_fire_at IS NOT NULL AND broken_at IS NULL"),
        sqlite_where=text("NOT paused AND next_fire_at IS NOT NULL AND broken_at IS NULL"),
    ),
    Index("ix_triggers_agent", "agent"),
)

runs = Table(
    "runs",
    metadata,
    # UUIDv7 text: time ordered, so listing by id is listing by creation time.
    Column("id", String(36), primary_key=True),
    Column("trigger_id", String(40)),
    Column("agent", String(100), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("lease", Integer, nullable=False, server_default="0"),
    Column("node_id", String(100)),
    Column("payload", JSON),
    Column("coalesced", Integer, nullable=False, server_default="1"),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("run_after", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("progress", Text),
    Column("output", Text),
    Column("stderr", Text),  # a command agent's stderr (migration 0007)
    Column("error", Text),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cost_usd", Float),
    Column("model", String(100)),
    # The succeeded run a user's retry re-ran as this new run (migration 0007).
    Column("retry_of", String(36)),
    # The shard of its agent's concurrency limit a running run holds (``store/slots.py``).
    Column("shard", SmallInteger, nullable=False, server_default="0"),
    # Its agent's concurrency key, rendered when the run was made (``rules/keys.py``).
    Column("concurrency_key", String(200)),
    # Why a queued run is not starting (a rate limit or pool full; migration 0014).
    Column("waiting_reason", Text),
    # Guarantee 1: one run per (trigger, scheduled time), enforced here and nowhere else.
    UniqueConstraint("trigger_id", "scheduled_for", name="uq_runs_trigger_scheduled"),
    Index(
        "ix_runs_ready",
        "agent",
        "run_after",
        postgresql_where=text("status = 'queued'"),
        sqlite_where=text("status = 'queued'"),
    ),
    Index(
        "ix_runs_running",
        "node_id",
        postgresql_where=text("status = 'running'"),
        sqlite_where=text("status = 'running'"),
    ),
    Index(
        "ix_runs_agent_running",
        "agent",
        "shard",
        postgresql_where=text("status = 'running'"),
        sqlite_where=text("status = 'running'"),
    ),
    Index(
        "ix_runs_trigger_active",
        "trigger_id",
        postgresql_where=text("status IN ('queued', 'running')"),
        sqlite_where=text("status IN ('queued', 'running')"),
    ),
    # Keyed agents (``store/keys.py``): each key's oldest ready runs, and the running runs
    # of a key, are index probes.
    Index(
        "ix_runs_key_ready",
        "agent",
        "concurrency_key",
        "run_after",
        postgresql_where=text("status = 'queued' AND concurrency_key IS NOT NULL"),
        sqlite_where=text("status = 'queued' AND concurrency_key IS NOT NULL"),
    ),
    Index(
        "ix_runs_key_running",
        "agent",
        "concurrency_key",
        postgresql_where=text("status = 'running' AND concurrency_key IS NOT NULL"),
        sqlite_where=text("status = 'running' AND concurrency_key IS NOT NULL"),
    ),
    Index(
        "ix_runs_key_id",
        "concurrency_key",
        "id",
        postgresql_where=text("concurrency_key IS NOT NULL"),
        sqlite_where=text("concurrency_key IS NOT NULL"),
    ),
    Index("ix_runs_finished_at", "finished_at"),
    Index("ix_runs_agent_id", "agent", "id"),
    # Time-window reads (dashboard chart, stats, --since/--until) scan a range of this.
    Index("ix_runs_queued_at", "queued_at"),
    # Budgets and cost reports sum an agent's runs by the time they started.
    Index("ix_runs_agent_started", "agent", "started_at"),
)

run_events = Table(
    "run_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(36), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("node_id", String(100)),
    Column("message", Text),
    Index("ix_run_events_run_id", "run_id"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("zombie_timeout_s", Float, nullable=False),
    Column("draining", Boolean, nullable=False, server_default=text("false")),
    # "node" (agentcron serve) or "worker" (pulls remote agents' runs over HTTP; its id is
    # ``worker:`` + the id it chose). Migration 0010.
    Column("kind", String(16), nullable=False, server_default="node"),
    # A worker's: the agents it last asked for; a node's: the agents it runs by name
    # (``serve --agents``). And the token a worker speaks with.
    Column("agents", JSON),
    Column("token_name", String(100)),
    # A node's routing tags (``serve --tags``), a JSON list; null: none (migration 0011).
    Column("tags", JSON),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("scope", String(16), nullable=False),
    # sha256 hex of the token; the token itself is never stored.
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    # A ``worker`` token's agents: the only runs it may claim, beat, complete, release.
    Column("agents", JSON),
    # A ``schedule`` token's cap on the live triggers made through it (migration 0015).
    Column("max_live", Integer),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

api_sessions = Table(
    "api_sessions",
    metadata,
    # sha256 hex of the dashboard session cookie's value.
    Column("id_hash", String(64), primary_key=True),
    Column(
        "token_name", String(100), ForeignKey("api_tokens.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_api_sessions_token_name", "token_name"),
    Index("ix_api_sessions_expires_at", "expires_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # One row per accepted delivery: the primary key is the replay check.
    Column(
        "trigger_id", String(40), ForeignKey("triggers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("webhook_id", String(255), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("run_id", String(36)),
    Index("ix_webhook_deliveries_received_at", "received_at"),
)

# Rate-limit pools several agents draw from (migration 0014; ``store/pools.py``).
pools = Table(
    "pools",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("requests_per_minute", BigInteger),
    Column("tokens_per_minute", BigInteger),
    Column("source", String(16), nullable=False, server_default="cli"),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The starts in the sliding window of each limit: a pool's name, or ``agent:NAME`` for an
# agent's own rate. Tokens are reserved at the start and replaced by the reported usage.
pool_starts = Table(
    "pool_starts",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("pool", String(120), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("reserved_tokens", BigInteger, nullable=False, server_default="0"),
    Column("used_tokens", BigInteger),
    Index("ix_pool_starts_pool", "pool", "started_at"),
    Index("ix_pool_starts_started_at", "started_at"),
)

model_prices = Table(
    "model_prices",
    metadata,
    # USD per million tokens; a run's cost is computed from these when it reports none.
    Column("model", String(100), primary_key=True),
    Column("input_per_mtok", Float, nullable=False),
    Column("output_per_mtok", Float, nullable=False),
    # "file" for prices declared in the agents file (synced like agents), else "cli"/"api".
    Column("source", String(16), nullable=False, server_default="cli"),
    Column("updated_at", UTCDateTime, nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "agent", String(100), ForeignKey("agents.name", ondelete="CASCADE"), nullable=False
    ),
    # A rule of one trigger, or (NULL) of every run of its agent.
    Column("trigger_id", String(40), ForeignKey("triggers.id", ondelete="CASCADE")),
    Column("kind", String(24), nullable=False),
    Column("threshold", Integer),  # consecutive_failures: N
    Column("duration_s", Float),  # long_running; dead_man (an explicit period)
    Column("interval_factor", Float),  # dead_man: the period as a multiple of the interval
    # Where alerts go: http(s) URLs are signed webhooks, anything else an Apprise URL.
    Column("channels", JSON, nullable=False),
    Column("webhook_secret", String(100).with_variant(Text, "postgresql")),
    Column("group_window_s", Float, nullable=False, server_default="3600"),
    Column("source", String(16), nullable=False, server_default="cli"),
    Column("created_at", UTCDateTime, nullable=False),
    # The periodic checks' watermark (long_running, dead_man): what was checked up to,
    # written in the transaction that raises, so each event alerts once.
    Column("checked_until", UTCDateTime),
    Index("ix_alert_rules_agent", "agent"),
)

alerts = Table(
    "alerts",
    metadata,
    # The outbox: one row per delivery (repeats of an open one are counted into it).
    Column("id", String(36), primary_key=True),
    Column(
        "rule_id", String(40), ForeignKey("alert_rules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # rule + trigger: repeats with the same key while one is open are grouped into it.
    Column("group_key", String(100), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("agent", String(100), nullable=False),
    Column("trigger_id", String(40)),
    Column("run_id", String(36)),
    Column("reason", Text, nullable=False),
    Column("link", Text),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    # open (taking repeats) -> sending (leased to a node) -> delivered, or retrying after
    # a failed attempt, or failed after the last one.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease", Integer, nullable=False, server_default="0"),
    Column("node_id", String(100)),
    Column("lease_until", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("last_error", Text),
    Index("uq_alerts_open_group", "group_key", unique=True,
          postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
    Index("ix_alerts_due", "next_attempt_at",
          postgresql_where=text("status IN ('open', 'retrying', 'sending')"),
          sqlite_where=text("status IN ('open', 'retrying', 'sending')")),
    Index("ix_alerts_rule_id", "rule_id"),
    Index("ix_alerts_group_key", "group_key", "first_at"),
)
