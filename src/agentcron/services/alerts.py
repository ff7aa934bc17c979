"""Alert rules in the service layer: ``AlertRuleInput`` (a rule as every front door states
it: CLI flags, a JSON body, an ``[[agents.alerts]]`` table) and ``AlertService``, whose
``build`` is the one place it is validated, before anything is written."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentcron.errors import NotFoundError, ValidationError
from agentcron.executors.alert_channels import is_webhook
from agentcron.executors.signing import secret_key
from agentcron.models import Alert, AlertKind, AlertRule, AlertStatus, TriggerKind
from agentcron.rules.ids import new_trigger_id
from agentcron.schedule.durations import parse_duration
from agentcron.services.validate import (
    check_in,
    check_int_between,
    check_name,
    check_one_of,
    check_printable,
    has_bidi_control,
    known_id,
)

if TYPE_CHECKING:
    from agentcron.store import Store

Duration = str | int | float

MAX_CHANNELS = 10
MAX_CHANNEL_CHARS = 2000
MAX_GROUP_WINDOW_S = 7 * 86400
MAX_THRESHOLD = 1000
_TRIGGER_REF = re.compile(r"^(?=\S)[^\x00-\x1f\x7f]{1,100}(?<=\S)$")  # an id or a name
_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")
_PERIODIC_HINT = "a duration such as 30m, or a multiple of the trigger's interval such as 2x"


@dataclass(frozen=True)
class AlertRuleInput:
    """An alert rule as a user states it.

    ``kind``: failed | consecutive_failures | missed | budget | long_running | dead_man |
    paused. ``trigger``: the trigger's id or name (its agent's), or None for every run of
    the agent. ``threshold``: N, for ``consecutive_failures``. ``after``: for
    ``long_running`` a duration; for ``dead_man`` a duration or ``"2x"`` (that many times
    the trigger's interval). ``channels``: http(s) URLs are signed webhooks (Standard
    Webhooks, with ``webhook_secret``); any other URL is an Apprise URL (``slack://``,
    ``mailto://``, ``ntfy://``, ``json://``...). ``group_window``: repeats within it are
    grouped into one delivery with a count."""

    agent: str
    kind: str
    channels: Sequence[str] = field(default_factory=list)
    trigger: str | None = None
    threshold: int | None = None
    after: Duration | None = None
    group_window: Duration = "1h"
    webhook_secret: str | None = None


class AlertService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def build(self, spec: AlertRuleInput, *, source: str = "cli",
              declared: tuple[str | None, TriggerKind | None] | None = None
              ) -> dict[str, Any]:
        """The stored values of a valid rule, or ``ValidationError`` naming the field.
        ``declared``: the agents file's rules name an agent and a trigger of the same file,
        not yet stored: (trigger id or None, its kind), checked without the store."""
        kind = check_one_of(spec.kind, AlertKind, "kind")
        if declared is None:
            agent = self._agent(spec.agent)
            trigger_id = (self._trigger(spec.trigger, agent) if spec.trigger is not None
                          else None)
            trigger_kind = (self.store.get_trigger(trigger_id).kind
                            if trigger_id is not None else None)
        else:
            agent = check_name(spec.agent, "agent")
            trigger_id, trigger_kind = declared
        threshold = None
        if kind is AlertKind.CONSECUTIVE_FAILURES:
            if spec.threshold is None:
                raise ValidationError("threshold", "is required for consecutive_failures",
                                      "e.g. threshold = 3")
            threshold = check_int_between(spec.threshold, "threshold", 1, MAX_THRESHOLD)
        elif spec.threshold is not None:
            raise ValidationError("threshold", f"means nothing for a {kind.value} rule",
                                  "only consecutive_failures takes a threshold")
        duration_s, factor = self._after(kind, spec.after, trigger_kind)
        channels = self._channels(spec.channels)
        secret = check_printable(spec.webhook_secret or None, "webhook_secret", 100)
        if secret is not None:
            try:
                secret_key(secret)
            except ValueError as exc:
                raise ValidationError("webhook_secret", str(exc),
                                      "whsec_ followed by base64, or any text") from None
        window = parse_duration(spec.group_window, "group_window", allow_zero=True)
        if window > MAX_GROUP_WINDOW_S:
            raise ValidationError("group_window", "is longer than 7 days", "e.g. 1h")
        return {"id": "al_" + new_trigger_id()[3:], "agent": agent, "trigger_id": trigger_id,
                "kind": kind.value, "threshold": threshold, "duration_s": duration_s,
                "interval_factor": factor, "channels": channels, "webhook_secret": secret,
                "group_window_s": window, "source": source}

    def _agent(self, name: str) -> str:
        check_name(name, "agent")
        try:
            return self.store.get_agent(name).name
        except NotFoundError:
            raise ValidationError("agent", f"no agent named {str(name)[:100]!r}",
                                  "see: agentcron agents list") from None

    def _trigger(self, ref: str, agent: str) -> str:
        if not isinstance(ref, str) or not _TRIGGER_REF.match(ref) or has_bidi_control(ref):
            raise ValidationError("trigger", "is not a trigger id or name",
                                  "give a trigger id (tr_...) or name of the agent")
        found = self.store.find_trigger(agent, ref)
        if found is not None:
            return found.id
        try:
            trigger = self.store.get_trigger(known_id(ref, "trigger"))
        except NotFoundError:
            raise ValidationError("trigger", f"agent {agent!r} has no trigger {ref!r}",
                                  "give a trigger id or name of that agent") from None
        if trigger.agent != agent:
            raise ValidationError("trigger", f"trigger {ref!r} is agent {trigger.agent!r}'s",
                                  f"give a trigger of agent {agent!r}")
        return trigger.id

    @staticmethod
    def _after(kind: AlertKind, after: Duration | None, trigger: TriggerKind | None
               ) -> tuple[float | None, float | None]:
        if kind not in (AlertKind.LONG_RUNNING, AlertKind.DEAD_MAN):
            if after is not None:
                raise ValidationError("after", f"means nothing for a {kind.value} rule",
                                      "only long_running and dead_man take one")
            return None, None
        if after is None:
            raise ValidationError("after", f"is required for {kind.value}", _PERIODIC_HINT)
        match = _FACTOR.match(after) if isinstance(after, str) else None
        if match is None:
            return parse_duration(after, "after"), None
        if kind is AlertKind.LONG_RUNNING:
            raise ValidationError("after", "long_running takes a duration", "e.g. 30m")
        factor = float(match.group(1))
        if not 1 <= factor <= 1000:
            raise ValidationError("after", f"{after!r} is not between 1x and 1000x", "e.g. 2x")
        if trigger not in (TriggerKind.INTERVAL, TriggerKind.CRON):
            raise ValidationError("after", f"{after!r} needs an interval or cron trigger",
                                  "give the rule a trigger, or a duration such as 2h")
        return None, factor

    @staticmethod
    def _channels(channels: Sequence[str]) -> list[str]:
        if isinstance(channels, str):
            channels = [channels]
        if not channels:
            raise ValidationError("channels", "no channel given",
                                  "a webhook URL (https://...) or an Apprise URL "
                                  "(slack://..., mailto://..., ntfy://...)")
        if len(channels) > MAX_CHANNELS:
            raise ValidationError("channels", f"more than {MAX_CHANNELS} channels",
                                  "use fewer channels per rule")
        checked = []
        for i, channel in enumerate(channels):
            where = f"channels[{i}]"
            if not isinstance(channel, str) or not channel.strip() or \
                    len(channel) > MAX_CHANNEL_CHARS or any(ord(c) < 33 for c in channel) \
                    or has_bidi_control(channel):
                raise ValidationError(where, "is not a URL",
                                      f"one URL of up to {MAX_CHANNEL_CHARS} characters")
            if is_webhook(channel):
                try:
                    host = urlsplit(channel).hostname
                except ValueError:
                    host = None
                if not host:
                    raise ValidationError(where, f"{channel[:80]!r} has no host",
                                          "e.g. https://hooks.example.com/agentcron")
            elif not _apprise_accepts(channel):
                raise ValidationError(where, "is not a URL Apprise knows",
                                      "see https://github.com/caronc/apprise/wiki for the "
                                      "URL of each service, e.g. slack://T/B/C")
            checked.append(channel)
        return checked

    # -- the use cases ---------------------------------------------------------------------

    def add(self, spec: AlertRuleInput, *, source: str = "cli",
            now: datetime | None = None) -> AlertRule:
        values = self.build(spec, source=source)
        self.store.add_alert_rule(values, now)
        return self.store.get_alert_rule(values["id"])

    def rules(self, agent: str | None = None) -> list[AlertRule]:
        return self.store.alert_rules(agent)

    def remove(self, rule_id: str) -> None:
        self.store.delete_alert_rule(known_id(rule_id, "alert rule"))

    def alerts(self, *, limit: int = 50, status: str | None = None,
               agent: str | None = None) -> list[Alert]:
        if status is not None:
            check_in(status, [s.value for s in AlertStatus], "status")
        check_int_between(limit, "limit", 1, 1000)
        return self.store.list_alerts(limit=limit, status=status, agent=agent)


def _apprise_accepts(url: str) -> bool:
    import apprise  # imported when needed: it is large, and most commands never use it

    try:
        return bool(apprise.Apprise().add(url))
    except Exception:  # a URL its parsers choke on is one it does not know
        return False
