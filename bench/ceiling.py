"""ceiling: what PostgreSQL itself can do on this machine. agentcron's firing transaction
(lock due triggers with SKIP LOCKED, insert their runs ON CONFLICT DO NOTHING, advance
next_fire_at) written as raw SQL and driven by pgbench, in batches of 1 and 500, on
agentcron's own schema and indexes. A second script adds the rest of a run's life in the
database (claim: queued -> running; finish: running -> succeeded), the end-to-end ceiling
for a no-op agent; a third inserts the runs already claimed (``running``) in the firing
transaction, as agentcron's ``fire_due(claim_for=...)`` does, then finishes them. Every
system's fires/s can be read as a share of these figures.

Each statement is one round trip (CTEs chain the steps), and pgbench runs with prepared
statements: this is the best case, not what a client library pays.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import report
from bench.meter import CpuMeter, wait_for_quiet
from bench.pg import PgTarget, ensure_database, libpq_url, sqlalchemy_url

PGBENCH_CANDIDATES = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"]

FIRE = """\
BEGIN;
WITH due AS (
  SELECT id, agent, next_fire_at FROM triggers
  WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at <= clock_timestamp()
  ORDER BY next_fire_at LIMIT :batch FOR UPDATE SKIP LOCKED
), inserted AS (
  INSERT INTO runs (id, trigger_id, agent, scheduled_for, status, coalesced, queued_at,
                    run_after, attempt, lease)
  SELECT gen_random_uuid()::text, id, agent, next_fire_at, 'queued', 1, clock_timestamp(),
         next_fire_at, 0, 0 FROM due
  ON CONFLICT (trigger_id, scheduled_for) DO NOTHING RETURNING 1
)
UPDATE triggers t SET next_fire_at = t.next_fire_at + interval '1 second',
                      last_fired_at = due.next_fire_at
FROM due WHERE t.id = due.id;
COMMIT;
"""
FIRE_CLAIMING = FIRE.replace("'queued'", "'running'").replace(
    "run_after, attempt, lease)",
    "run_after, attempt, lease, node_id, started_at, heartbeat_at)").replace(
    "next_fire_at, 0, 0 FROM due",
    "next_fire_at, 1, 1, 'pgbench-' || :client_id, clock_timestamp(), clock_timestamp() "
    "FROM due")
FINISH = """\
UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp()
WHERE id IN (SELECT id FROM runs WHERE status = 'running' AND node_id = 'pgbench-' || :client_id
             LIMIT :batch FOR UPDATE SKIP LOCKED);
"""
CLAIM_FINISH = """\
UPDATE runs SET status = 'running', node_id = 'pgbench-' || :client_id, lease = lease + 1,
       attempt = attempt + 1, started_at = clock_timestamp(), heartbeat_at = clock_timestamp()
WHERE id IN (SELECT id FROM runs WHERE agent = 'noop' AND status = 'queued'
             AND run_after <= clock_timestamp() ORDER BY run_after LIMIT :batch
             FOR UPDATE SKIP LOCKED);
UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp()
WHERE id IN (SELECT id FROM runs WHERE status = 'running' AND node_id = 'pgbench-' || :client_id
             LIMIT :batch FOR UPDATE SKIP LOCKED);
"""
COLUMNS: list[report.Column] = [
    ("script", "what"), ("batch", "batch"), ("clients", "clients"), ("tps", "transactions/s"),
    ("fires_per_s", "fires/s"), ("latency_ms", "latency ms"), ("pg_cpu_pct", "PG CPU %"),
    ("other_cpu_pct", "others % (pgbench incl.)"), ("note", "note"),
]


def pgbench() -> str | None:
    for candidate in PGBENCH_CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found:
            return found
    return None


def seed(url: str, triggers: int) -> None:
    from sqlalchemy import text

    from agentcron.store import Store
    from bench import agentcron_setup as setup

    store = Store(sqlalchemy_url(url))
    store.upgrade()
    setup.reset(store)
    setup.add_agent(store)
    setup.insert_interval_triggers(store, triggers)
    with store.engine.begin() as conn:
        # due for a long time: a day in the past, advanced one second per fire
        conn.execute(text("UPDATE triggers SET next_fire_at = now() - interval '1 day' "
                          "+ (random() * interval '1 second')"))
    setup.analyze(store)
    store.close()


def truncate_runs(url: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("TRUNCATE runs")
        conn.execute("VACUUM ANALYZE triggers")


def run_pgbench(exe: str, url: str, script: str, *, batch: int, clients: int,
                duration_s: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
        path = f.name
    cmd = [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
           "-T", str(duration_s), "-D", f"batch={batch}", "-f", path, libpq_url(url)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    Path(path).unlink(missing_ok=True)
    tps = re.search(r"tps = ([\d.]+)", proc.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", proc.stdout)
    if proc.returncode != 0 or not tps:
        return {"error": (proc.stderr or proc.stdout).strip()[-300:]}
    return {"tps": round(float(tps.group(1)), 1),
            "latency_ms": round(float(latency.group(1)), 2) if latency else None}


def workload(target: PgTarget, out: Path, *, quick: bool, duration_s: int | None) -> None:
    exe = pgbench()
    duration = duration_s or (2 if quick else 15)
    triggers = 2_000 if quick else 20_000
    clients = 2
    url = ensure_database(target, "ceiling", fresh=True)
    results: list[dict[str, Any]] = []
    if exe is None:
        results.append({"script": "-", "note": "pgbench not found"})
    else:
        seed(url, triggers)
        for name, script in (("fire (lock, insert, advance)", FIRE),
                             ("fire + claim + finish", FIRE + CLAIM_FINISH),
                             ("fire-and-claim + finish", FIRE_CLAIMING + FINISH)):
            for batch in (1, 500):
                report.console.print(f"[bold]ceiling[/bold] {name}, batch {batch} ...")
                truncate_runs(url)
                quiet = wait_for_quiet(0 if quick else 120)
                meter = CpuMeter([], libpq_url(url), target.dbname("ceiling"))
                meter.start()
                result = run_pgbench(exe, url, script, batch=batch, clients=clients,
                                     duration_s=duration)
                cpu = meter.stop()
                result.update(pg_cpu_pct=cpu["pg_cpu_pct"],
                              pg_bench_cpu_pct=cpu["pg_bench_cpu_pct"],
                              other_cpu_pct=round(cpu["other_cpu_pct"], 1))
                result.update(script=name, batch=batch, clients=clients, **quiet)
                if "tps" in result:
                    result["fires_per_s"] = round(result["tps"] * batch, 0)
                else:
                    result["note"] = f"error: {result.get('error')}"
                results.append(result)
    report.print_table("ceiling: the firing transaction in raw SQL (pgbench)", COLUMNS, results)
    report.write_json(out, "ceiling", pg_url=target.admin_url(), results=results, settings={
        "pgbench": exe, "duration_s": duration, "clients": clients, "triggers": triggers,
        "mode": "-M prepared, -n", "scripts": {
            "fire": FIRE, "claim_finish": CLAIM_FINISH, "fire_claiming": FIRE_CLAIMING,
            "finish": FINISH},
    }, notes=[
        "fires/s = transactions/s x batch (every batch finds a full batch due: the "
        "triggers are a day behind and advance one second per fire)",
        "fire + claim + finish: three transactions per pgbench transaction; "
        "fire-and-claim + finish: runs inserted already running for the client (agentcron's "
        "fire_due(claim_for=...)), then finished: two transactions",
    ])
