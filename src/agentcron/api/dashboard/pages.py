"""The dashboard: server-rendered pages (Jinja2), plain CSS, one small script that
refreshes the page's content in place.

Sign-in: the user pastes an API token; the server checks it and starts a session. The
cookie holds a random session id (only its hash is stored; the token itself never goes into
a cookie), is ``HttpOnly`` (no script can read it) and ``SameSite=Strict`` (no other site's
page can make the browser send it), and lasts 12 hours. Revoking the token ends the session.

Actions (pause, resume, approve, fire, cancel, retry) are POST forms. They are not forgeable
cross-site: the cookie is SameSite=Strict, the form must carry the session's CSRF token
(compared in constant time), and an ``Origin`` header, when the browser sends one, must be
this site. Actions need a write token; a read token can look at everything.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from agentcron.api.auth import blocking
from agentcron.api.common import services
from agentcron.api.dashboard.charts import STATUS_COLORS, status_bars
from agentcron.errors import AgentcronError, ConflictError, NotFoundError, ValidationError
from agentcron.models import Run, RunStatus
from agentcron.rules.budgets import describe_budget, format_usd
from agentcron.schedule.durations import format_duration
from agentcron.services.access import SESSION_LIFETIME, Access, Scope, scope_allows
from agentcron.services.documents import (
    agent_target,
    alert_rule_json,
    format_cost,
    key_usage_json,
    node_routing,
    preview,
)
from agentcron.services.overview import overview, usage_by_day
from agentcron.services.validate import RUN_ID
from agentcron.services.workers import worker_state
from agentcron.store.tokens import ApiToken

HERE = Path(__file__).parent
COOKIE = "agentcron_session"
PAGE = 50
KEYS_SHOWN = 10  # an agent's fullest keys on the agents page
_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)


@dataclass(frozen=True)
class Session:
    token: ApiToken
    csrf: str

    @property
    def can_write(self) -> bool:
        return scope_allows(self.token.scope, Scope.WRITE)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    amount = format_duration(round(abs(seconds))) if round(abs(seconds)) else "now"
    if amount == "now":
        return "now"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _utc(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    """A measured time (a lag, a run's duration): ``850 ms``, ``12.3 s``, then ``4m10s``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s" if value < 60 else format_duration(round(value))


def _payload_hint(value: Any) -> str:
    """A listing's payload (its preview, see ``documents.preview``) as one line of JSON."""
    if value is None:
        return ""
    shown, cut = preview(value)
    return f"{shown}…" if cut else json.dumps(shown, ensure_ascii=False)


def _duration(value: float | None) -> str:
    """A configured duration (a timeout, an interval) as it is written: ``5m``, ``1m30s``."""
    return "-" if value is None else format_duration(value)


def _cost(run: Run) -> str:
    """A run's cost as the CLI and the API's ``cost`` show it (``format_cost``)."""
    return format_cost(run) or "-"


def _usd(value: float, unpriced: int = 0) -> str:
    """A sum of costs; ``+ N unpriced`` when runs without a price are left out of it."""
    total = "$" + format_usd(value)
    return f"{total} + {unpriced} unpriced" if unpriced else total


_env.filters.update(utc=_utc, seconds=_seconds, duration=_duration, cost=_cost, usd=_usd,
                    payload_hint=_payload_hint)


def render(name: str, request: Request, session: Session | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    """``note_run``: the run an action's note is about (a ``note_run`` query parameter that
    is a run id), linked from the note."""
    run = request.query_params.get("note_run") or ""
    context.setdefault("note_run", run if RUN_ID.match(run) else None)
    page = _env.get_template(name).render(request=request, session=session,
                                          colors=STATUS_COLORS, **context)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


async def current_session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    access: Access = request.app.state.access
    found = await blocking(request, access.session, cookie)
    return None if found is None else Session(*found)


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body())[:65536].decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # no Origin (an old browser): the CSRF token alone decides
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _back(form: dict[str, str], default: str) -> str:
    """Where an action returns to: a local path only, never another site."""
    target = form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


Page = Callable[[Request, Session], Awaitable[Response]]


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(path: str) -> Callable[[Page], Page]:
        def wrap(view: Page) -> Page:
            async def handler(request: Request) -> Response:
                session = await current_session(request)
                if session is None or not scope_allows(session.token.scope, Scope.READ):
                    return RedirectResponse("/login", status_code=303)
                try:
                    return await view(request, session)
                except NotFoundError as exc:
                    return render("error.html", request, session, 404, message=str(exc))
                except ValidationError as exc:
                    return render("error.html", request, session, 422, message=str(exc))

            app.add_api_route(path, handler, methods=["GET"], include_in_schema=False,
                              response_class=HTMLResponse)
            return view
        return wrap

    def action(path: str) -> Callable[[Callable[..., Any]], None]:
        """A POST form: signed in, write scope, same origin, CSRF token; then the service
        call ``perform(services, form, **path_params)``, and back to ``next`` with its
        message (a note; a ``(note, run_id)`` pair links the note to that run)."""
        def wrap(perform: Callable[..., Any]) -> None:
            async def handler(request: Request) -> Response:
                session = await current_session(request)
                if session is None:
                    return RedirectResponse("/login", status_code=303)
                form = await _form(request)
                sent = form.get("csrf", "")
                if not _same_origin(request) or not hmac.compare_digest(
                        sent.encode(), session.csrf.encode()):
                    return render("error.html", request, session, 403,
                                  message="this form did not come from this dashboard "
                                          "(CSRF check failed); reload the page and retry")
                if not session.can_write:
                    return render("error.html", request, session, 403,
                                  message=f"token {session.token.name!r} is read-only; "
                                          "actions need a write token")
                params = dict(request.path_params)
                run_id: str | None = None
                try:
                    note = await blocking(request, perform, services(request), form, **params)
                    if isinstance(note, tuple):
                        note, run_id = note
                except (NotFoundError, ConflictError, ValidationError, AgentcronError) as exc:
                    note = f"error: {exc}"
                else:
                    metrics = request.app.state.metrics
                    if path.endswith("/fire") and metrics is not None:
                        metrics.fired("manual")
                back, _, kept = _back(form, "/").partition("?")
                # The previous action's note (and its run) is not carried over.
                query = [(k, v) for k, v in parse_qsl(kept, keep_blank_values=True)
                         if k not in ("note", "note_run")]
                query += [("note", note)] + ([("note_run", run_id)] if run_id else [])
                return RedirectResponse(f"{back}?{urlencode(query)}", status_code=303)

            app.add_api_route(path, handler, methods=["POST"], include_in_schema=False)
        return wrap

    # -- signing in and out ---------------------------------------------------------------

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        return render("login.html", request, None, message=request.query_params.get("note"))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return render("login.html", request, None, 403, message="sign-in refused: the "
                          "form was posted from another site")
        form = await _form(request)
        access: Access = request.app.state.access
        token = await blocking(request, access.authenticate, form.get("token", "").strip())
        if token is None:
            return render("login.html", request, None, 401,
                          message="that token is not valid (or was revoked)")
        if not scope_allows(token.scope, Scope.READ):
            # A worker token may only speak the worker protocol.
            return render("login.html", request, None, 403,
                          message=f"a {token.scope} token cannot sign in to the dashboard; "
                                  "use a read, write or admin token")
        now = await blocking(request, services(request).now)
        cookie, _csrf = await blocking(request, access.start_session, token, now)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, cookie, max_age=int(SESSION_LIFETIME.total_seconds()),
                            httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = await current_session(request)
        form = await _form(request)
        cookie = request.cookies.get(COOKIE)
        if session is not None and cookie and hmac.compare_digest(
                form.get("csrf", "").encode(), session.csrf.encode()):
            await blocking(request, request.app.state.access.end_session, cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages ----------------------------------------------------------------------------

    @page("/")
    async def home(request: Request, session: Session) -> Response:
        svc = services(request)
        view = await blocking(request, overview, svc)
        nodes = await blocking(request, svc.nodes, view.now)
        supervisor = request.app.state.supervisor
        return render("overview.html", request, session, view=view, nodes=nodes,
                      chart=Markup(status_bars(view.hours)), when=_when, node_runs=node_routing,
                      loops_down=supervisor.down() if supervisor is not None else [],
                      this_node=request.app.state.node_id)

    @page("/triggers")
    async def triggers(request: Request, session: Session) -> Response:
        svc = services(request)
        agent = request.query_params.get("agent") or None
        created_by = request.query_params.get("created_by") or None
        number = _int(request.query_params.get("page"), 1)
        page_of, total = await blocking(request, svc.triggers_page, agent, PAGE,
                                        (number - 1) * PAGE, created_by)
        last = await blocking(request, svc.runs.last_status, [t.id for t in page_of])
        now = await blocking(request, svc.now)
        rows = [(t, svc.describe(t), last.get(t.id)) for t in page_of]
        return render("triggers.html", request, session, rows=rows, total=total, now=now,
                      agent=agent, created_by=created_by, page=number,
                      pages=max(1, -(-total // PAGE)), when=_when,
                      note=request.query_params.get("note"), here=str(request.url.path) +
                      (f"?{request.url.query}" if request.url.query else ""))

    @page("/runs")
    async def runs(request: Request, session: Session) -> Response:
        svc = services(request)
        q = request.query_params
        filters = {"agent": q.get("agent") or None, "trigger": q.get("trigger") or None,
                   "status": q.get("status") or None, "key": q.get("key") or None}
        result = await blocking(request, svc.list_runs, agent=filters["agent"],
                                trigger_id=filters["trigger"], status=filters["status"],
                                key=filters["key"], limit=PAGE,
                                before=q.get("before") or None)
        older = None
        if result.next_cursor:
            older = "/runs?" + urlencode({**{k: v for k, v in filters.items() if v},
                                          "before": result.next_cursor})
        now = await blocking(request, svc.now)
        return render("runs.html", request, session, runs=result.runs, filters=filters,
                      older=older, statuses=[s.value for s in RunStatus], now=now, when=_when,
                      note=q.get("note"))

    @page("/runs/{run_id}")
    async def run_detail(request: Request, session: Session) -> Response:
        svc = services(request)
        run, events = await blocking(request, svc.get_run, request.path_params["run_id"])
        now = await blocking(request, svc.now)
        return render("run.html", request, session, run=run, events=events, now=now,
                      when=_when, note=request.query_params.get("note"),
                      here=str(request.url.path))

    @page("/agents")
    async def agents(request: Request, session: Session) -> Response:
        svc = services(request)
        listed = await blocking(request, svc.agents.all)
        usage = await blocking(request, usage_by_day, svc, 7)
        budgets = await blocking(request, svc.spending.budget_states, listed)
        pools = await blocking(request, svc.pools.all)
        keys = {a.name: key_usage_json(a, await blocking(request, svc.agents.busiest_keys,
                                                         a.name, KEYS_SHOWN))
                for a in listed if a.keys is not None}
        return render("agents.html", request, session, agents=listed, usage=usage,
                      budgets=budgets, pools=pools, keys=keys, target=agent_target,
                      describe_budget=describe_budget,
                      note=request.query_params.get("note"))

    @page("/alerts")
    async def alerts(request: Request, session: Session) -> Response:
        svc = services(request)
        listed = await blocking(request, svc.alerts.alerts, limit=PAGE)
        rules = await blocking(request, svc.alerts.rules)
        now = await blocking(request, svc.now)
        return render("alerts.html", request, session, alerts=listed, now=now, when=_when,
                      rules=[alert_rule_json(r) for r in rules],
                      note=request.query_params.get("note"))

    @page("/workers")
    async def workers(request: Request, session: Session) -> Response:
        svc = services(request)
        now = await blocking(request, svc.now)
        listed = await blocking(request, svc.workers.list)
        rows = [(w, worker_state(w, now).value) for w in listed]
        return render("workers.html", request, session, rows=rows, now=now, when=_when,
                      utc=_utc)

    # -- actions --------------------------------------------------------------------------

    @action("/triggers/{trigger_id}/pause")
    def pause(svc: Any, form: dict[str, str], trigger_id: str) -> str:
        svc.pause_trigger(trigger_id)
        return f"trigger {trigger_id} paused"

    @action("/triggers/{trigger_id}/resume")
    def resume(svc: Any, form: dict[str, str], trigger_id: str) -> str:
        trigger = svc.resume_trigger(trigger_id)
        return f"trigger {trigger_id} resumed; next fire {_utc(trigger.next_fire_at)}"

    @action("/triggers/{trigger_id}/approve")
    def approve(svc: Any, form: dict[str, str], trigger_id: str) -> str:
        trigger = svc.approve_trigger(trigger_id)
        return f"trigger {trigger_id} approved; next fire {_utc(trigger.next_fire_at)}"

    @action("/triggers/{trigger_id}/fire")
    def fire_trigger(svc: Any, form: dict[str, str], trigger_id: str) -> tuple[str, str]:
        """With the trigger's payload, or the form's ``payload`` (JSON text) if given."""
        trigger = svc.get_trigger(trigger_id)
        text = form.get("payload", "").strip()
        run_id = (svc.fire(trigger.agent, text, payload_is_json_text=True) if text
                  else svc.fire(trigger.agent, trigger.payload))
        return f"run {run_id} of {trigger.agent} queued", run_id

    @action("/agents/{name}/fire")
    def fire_agent(svc: Any, form: dict[str, str], name: str) -> tuple[str, str]:
        """With the form's ``payload`` (JSON text; none when empty)."""
        text = form.get("payload", "").strip()
        run_id = svc.fire(name, text or None, payload_is_json_text=True)
        return f"run {run_id} of {name} queued", run_id

    @action("/runs/{run_id}/cancel")
    def cancel(svc: Any, form: dict[str, str], run_id: str) -> str:
        was = svc.cancel_run(run_id)
        return f"run {run_id} cancelled (was {was.value})"

    @action("/runs/{run_id}/retry")
    def retry(svc: Any, form: dict[str, str], run_id: str) -> tuple[str, str]:
        queued = svc.retry_run(run_id)
        if queued == run_id:
            return f"run {run_id} queued again", queued
        return f"run {run_id} keeps its output; new run {queued} queued (retry of it)", queued


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, min(100_000, int(value))) if value else default
    except ValueError:
        return default
