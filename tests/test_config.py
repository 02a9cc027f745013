from __future__ import annotations

import pytest

from shoprank.config import ConfigError, Settings


def test_defaults_are_embedded_mode():
    settings = Settings.from_env({})
    assert settings.redis_url is None and settings.resolved_broker_url is None
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.scorer_spec().model == "BAAI/bge-reranker-v2-m3"


def test_environment_values_are_parsed():
    settings = Settings.from_env(
        {
            "SHOPRANK_REDIS_URL": "redis://r:6379/0",
            "SHOPRANK_RERANKER_INT8": "false",
            "SHOPRANK_RERANK_DEADLINE_MS": "250",
            "SHOPRANK_RERANKER_THREADS": "",
        }
    )
    assert settings.resolved_broker_url == "redis://r:6379/0"
    assert settings.reranker_int8 is False and settings.rerank_deadline_ms == 250
    assert settings.reranker_threads is None
    assert settings.scorer_spec().int8 is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOPRANK_RERANK_DEADLINE_MS", "soon"),
        ("SHOPRANK_RERANKER_INT8", "maybe"),
        ("SHOPRANK_FIRST_STAGE_TOP_K", "0"),
        ("SHOPRANK_ENV", "staging"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name.removeprefix("SHOPRANK_").split("_")[0]):
        Settings.from_env({name: value})


def test_production_refuses_the_default_secret():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"SHOPRANK_ENV": "production"})
    assert Settings.from_env({"SHOPRANK_ENV": "production", "SHOPRANK_SECRET_KEY": "x" * 32}).env == "production"
