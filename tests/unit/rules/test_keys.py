"""Concurrency keys as pure rules: rendering (never an error), what a template and weights
may be, and the fair order."""

from __future__ import annotations

from typing import Any

import pytest

from agentcron.errors import ValidationError
from agentcron.models import KeyPolicy
from agentcron.rules.keys import (
    MAX_KEY_CHARS,
    check_template,
    check_weights,
    fair_order,
    keys_from_json,
    keys_to_json,
    render_key,
)
from agentcron.services.agents import AgentInput, parse_keys


@pytest.mark.parametrize(("template", "payload", "key"), [
    ("{{ tenant }}", {"tenant": "acme"}, "acme"),
    ("{{tenant}}", {"tenant": "acme"}, "acme"),
    ("org-{{ customer.id }}/{{ region }}", {"customer": {"id": 7}, "region": "eu"}, "org-7/eu"),
    ("{{ items.1 }}", {"items": ["a", "b"]}, "b"),
    ("{{ flag }}", {"flag": True}, "true"),
    ("{{ n }}", {"n": 1.5}, "1.5"),
    ("{{ none }}", {"none": None}, ""),
    # does not fit: the empty key, never an error
    ("{{ tenant }}", {"other": 1}, ""),
    ("{{ tenant }}", None, ""),
    ("{{ tenant }}", "a string payload", ""),
    ("{{ tenant }}", [1, 2], ""),
    ("{{ tenant }}", {"tenant": {"nested": 1}}, ""),
    ("{{ tenant }}", {"tenant": [1]}, ""),
    ("{{ items.5 }}", {"items": ["a"]}, ""),
    ("x-{{ a }}-{{ b }}", {"a": 1}, ""),  # one part missing: the whole key is empty
])
def test_render_key(template: str, payload: Any, key: str) -> None:
    assert render_key(template, payload) == key


def test_a_long_key_is_cut() -> None:
    assert render_key("{{ t }}", {"t": "x" * 1000}) == "x" * MAX_KEY_CHARS


@pytest.mark.parametrize("template", [
    "", "   ", "tenant", "{{ tenant | upper }}", "{{ f() }}", "{% for x in y %}{{ x }}",
    "{{ tenant }} {{", "{{ 1x }}", "{{ a }}" * 200, 7,
])
def test_bad_templates_are_refused_naming_the_field(template: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        check_template(template, "concurrency-key")
    assert exc.value.field == "concurrency-key"


@pytest.mark.parametrize("weights", [[1], {"a": 0}, {"a": 1001}, {"a": True}, {"a": "2"},
                                     {"x" * 300: 1}])
def test_bad_weights_are_refused(weights: Any) -> None:
    with pytest.raises(ValidationError):
        check_weights(weights)


def test_policy_round_trips_through_its_json() -> None:
    policy = KeyPolicy("{{ t }}", 3, {"gold": 2})
    assert keys_from_json(keys_to_json(policy)) == policy
    assert keys_to_json(None) is None and keys_from_json(None) is None


def test_fair_order_is_round_robin_oldest_first_within_a_key() -> None:
    ready = [("A", ["a1", "a2", "a3", "a4"]), ("B", ["b1", "b2"]), ("C", ["c1"])]
    room = {"A": 10, "B": 10, "C": 10}
    assert fair_order(ready, room, {}, 5) == ["a1", "b1", "c1", "a2", "b2"]
    assert fair_order(ready, room, {}, 100) == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]


def test_fair_order_gives_weights_turns_and_respects_room() -> None:
    ready = [("A", ["a1", "a2", "a3"]), ("B", ["b1", "b2", "b3", "b4"])]
    assert fair_order(ready, {"A": 10, "B": 10}, {"B": 3}, 5) == ["a1", "b1", "b2", "b3",
                                                                   "a2"]
    assert fair_order(ready, {"A": 1, "B": 2}, {}, 10) == ["a1", "b1", "b2"]
    assert fair_order(ready, {"B": 1}, {}, 10) == ["b1"]  # no room given: none taken


def test_agent_input_builds_the_policy_from_every_door() -> None:
    def build(**kw: Any) -> KeyPolicy | None:
        return parse_keys(AgentInput(name="a", kind="python", config={}, **kw))

    assert build() is None
    assert build(concurrency_key="{{ t }}") == KeyPolicy("{{ t }}", 1, {})
    assert build(concurrency_key="{{ t }}", max_per_key=4, key_weights={"x": 2}) == \
        KeyPolicy("{{ t }}", 4, {"x": 2})
    for bad, field in (({"max_per_key": 2}, "max-per-key"),
                       ({"key_weights": {"x": 2}}, "key-weights"),
                       ({"concurrency_key": "{{ t }}", "max_per_key": 0}, "max-per-key"),
                       ({"concurrency_key": "t"}, "concurrency-key")):
        with pytest.raises(ValidationError) as exc:
            build(**bad)
        assert exc.value.field == field
