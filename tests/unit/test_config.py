"""Configuration: defaults, file, environment, explicit values, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from oqron import ConfigError, define_config, load_config
from oqron.config import Clustering


def test_defaults() -> None:
    config = load_config(env={})
    assert config.project == "oqron" and config.environment == "development"
    assert config.storage == config.broker == config.lock == "sqlite:///oqron.db"
    assert config.prefix == "oqron:oqron:development:"
    assert config.lease_ttl == 10.0 and config.graceful_timeout == 25.0
    assert config.workers >= 1 and config.queues is None
    assert config.clustering == Clustering(1, (0,), "default")


def test_layering_file_env_arguments(tmp_path: Path) -> None:
    path = tmp_path / "oqron_config.py"
    path.write_text(
        "from oqron import define_config\n"
        "config = define_config(project='shop', workers=3, lease_ttl=5, queues='a:2,b')\n"
    )
    env = {"OQRON_CONFIG": str(path), "OQRON_WORKERS": "6", "OQRON_ENVIRONMENT": "production"}
    config = load_config(env=env, overrides={"lease_ttl": 7.5, "workers": None})
    assert config.project == "shop"
    assert config.workers == 6
    assert config.environment == "production"
    assert config.lease_ttl == 7.5
    assert config.queues == {"a": 2, "b": 1}


def test_clustering() -> None:
    clustering = {"total_shards": 4, "owned_shards": [3, 0], "region": "eu"}
    config = define_config(scheduler={"clustering": clustering})
    assert config.clustering == Clustering(4, (0, 3), "eu")
    assert define_config(clustering='{"total_shards": 2}').clustering.owned_shards == (0, 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workers": 0}, "workers: expected an integer >= 1, got 0"),
        ({"workers": "many"}, "workers: expected an integer >= 1"),
        ({"prefetch": 51}, "prefetch: expected an integer from 1 to 50, got 51"),
        ({"lease_ttl": 0}, "lease_ttl: expected a number of seconds > 0.0"),
        ({"reply_poll": 0.01}, "reply_poll: expected a number of seconds <= 0.005, got 0.01"),
        ({"reply_poll": -1}, "reply_poll: expected a number of seconds >= 0.0"),
        ({"storage": "mysql://x"}, "storage: unknown URL scheme 'mysql'"),
        ({"broker": "localhost"}, "broker: expected an adapter URL"),
        ({"modules": ["queue", "bogus"]}, "modules: unknown module 'bogus'; allowed: cron, scheduler"),
        ({"project": "a:b"}, "project: expected 1-64 characters"),
        ({"log_level": "loud"}, "log_level: expected one of DEBUG"),
        ({"colour": "blue"}, "colour: unknown setting; allowed: project"),
        ({"clustering": {"total_shards": 2, "owned_shards": [2]}},
         "clustering.owned_shards: shard 2 is outside 0..1"),
        ({"queues": "a:zero"}, r"queues\[a\] weight: expected an integer >= 1"),
    ],
)
def test_errors_name_the_field_and_what_is_allowed(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        define_config(**fields)


def test_bad_environment_value() -> None:
    with pytest.raises(ConfigError, match="graceful_timeout"):
        load_config(env={"OQRON_GRACEFUL_TIMEOUT": "soon"})


def test_config_file_must_define_config(tmp_path: Path) -> None:
    path = tmp_path / "c.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must define `config = define_config"):
        load_config(path=str(path), env={})
