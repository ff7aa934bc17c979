"""llm agent config: what is accepted, what is refused with which field named."""

from __future__ import annotations

from typing import Any

import pytest

from agentcron.errors import ValidationError
from agentcron.executors.validation import validate_agent_config
from agentcron.models import AgentKind

LLM = AgentKind.LLM
BASE = {"base_url": "https://api.example.com/v1/", "model": "gpt-4o-mini",
        "prompt": "Summarise {{ text }}"}


def test_a_full_config_is_normalised() -> None:
    config = validate_agent_config(LLM, {**BASE, "system": "Be terse.", "temperature": 1,
                                         "max_tokens": 300, "api_key_env": "OPENAI_API_KEY",
                                         "output_limit": 1000})
    assert config == {
        "base_url": "https://api.example.com/v1", "model": "gpt-4o-mini",
        "prompt": "Summarise {{ text }}", "system": "Be terse.", "temperature": 1.0,
        "max_tokens": 300, "api_key_env": "OPENAI_API_KEY", "output_limit": 1000,
    }


def test_optional_settings_default_to_none() -> None:
    config = validate_agent_config(LLM, BASE)
    assert config["system"] is None and config["temperature"] is None
    assert config["max_tokens"] is None and config["api_key_env"] is None


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"base_url": None}, "base_url", "needs a base_url"),
        ({"base_url": "ftp://x/v1"}, "base_url", "invalid url"),
        ({"base_url": "https://api.example.com/v1/chat/completions"}, "base_url",
         "the API root"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "base_url", "credentials"),
        ({"model": ""}, "model", "needs a model"),
        ({"model": "x" * 101}, "model", "invalid model"),
        ({"prompt": None}, "prompt", "non-empty"),
        ({"prompt": "{{ unclosed"}, "prompt", "syntax error on line 1"),
        ({"system": "{% if %}"}, "system", "syntax error"),
        ({"temperature": 3}, "temperature", "0 to 2"),
        ({"temperature": True}, "temperature", "invalid"),
        ({"max_tokens": 0}, "max_tokens", "from 1"),
        ({"max_tokens": 1.5}, "max_tokens", "invalid"),
        ({"api_key_env": "AGENTCRON_KEY"}, "api_key_env", "reserved"),
        ({"prompts": "x"}, "llm", "did you mean 'prompt'"),
    ],
)
def test_bad_settings_name_the_field(change: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_agent_config(LLM, {**BASE, **change})
    assert info.value.field == field
    assert text in str(info.value)


def test_a_key_given_instead_of_a_variable_name_is_refused_without_echoing_it() -> None:
    key = "sk-proj-abcdefghijklmnop0123456789"
    with pytest.raises(ValidationError) as info:
        validate_agent_config(LLM, {**BASE, "api_key_env": key})
    assert info.value.field == "api_key_env"
    assert "NAME of an environment variable" in str(info.value)
    assert key not in str(info.value)
