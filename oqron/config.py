"""Configuration: one table of settings drives defaults, the config file, ``OQRON_*`` and the CLI.

Loading order (later wins): defaults → ``oqron_config.py`` in the working directory (or the file
named by ``--config`` / ``OQRON_CONFIG``), which defines ``config = define_config(...)`` →
environment variables ``OQRON_<FIELD>`` → explicit arguments (command-line flags).
Every value passes through its setting's parser, so a bad value anywhere raises ``ConfigError``
naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

MODULES = ("cron", "scheduler", "queue", "worker", "webhook", "ratelimit")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
URL_SCHEMES = ("memory", "sqlite", "redis", "rediss", "unix", "postgresql", "postgres")
DEFAULT_URL = "sqlite:///oqron.db"
#: A child lists the lease tokens of the jobs it holds in one pipe message (atomic under PIPE_BUF).
MAX_PREFETCH = 50
#: Polling burns the producer's CPU for as long as it lasts: past a few ms, sleeping is better.
MAX_REPLY_POLL = 0.005
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class Clustering:
    """Sharded leader election: this master campaigns for ``owned_shards`` of ``total_shards``."""

    total_shards: int = 1
    owned_shards: tuple[int, ...] = (0,)
    region: str = "default"


@dataclass(frozen=True)
class Config:
    """The resolved configuration. Build it with ``define_config`` or ``load_config``."""

    project: str = "oqron"
    environment: str = "development"
    storage: str = DEFAULT_URL
    broker: str = DEFAULT_URL
    lock: str = DEFAULT_URL
    modules: tuple[str, ...] = MODULES
    triggers: tuple[str, ...] | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queues: dict[str, int] | None = None
    lease_ttl: float = 10.0
    max_stalled_count: int = 2
    max_jobs_per_child: int | None = None
    prefetch: int = 16
    reply_poll: float = 0.0002
    max_memory_per_child: int | None = None
    graceful_timeout: float = 25.0
    kill_grace: float = 2.0
    clustering: Clustering = field(default_factory=Clustering)
    log_level: str = "INFO"
    pidfile: str | None = None

    @property
    def prefix(self) -> str:
        """The isolation prefix put in front of every key, row and lock."""
        return f"oqron:{self.project}:{self.environment}:"

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied, each validated like ``define_config``."""
        return dataclasses.replace(self, **_parse_all(changes))


# --- parsers: take a Python value or an environment string, return the typed value ----------


def _name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ConfigError(
            name, f"expected 1-64 characters of letters, digits, '_', '.', '-' (no ':'), got {value!r}"
        )
    return value


def _url(name: str, value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(name, f"expected an adapter URL ({_schemes()}), got {value!r}")
    for part in value.split(","):
        scheme = part.strip().split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise ConfigError(name, f"unknown URL scheme {scheme!r}; allowed: {_schemes()}")
    return value.strip()


def _schemes() -> str:
    return ", ".join(f"{s}://" for s in URL_SCHEMES)


def _str_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(name, f"expected a list of names or a comma-separated string, got {value!r}")
    return tuple(value)


def _modules(name: str, value: Any) -> tuple[str, ...]:
    items = _str_list(name, value)
    unknown = [m for m in items if m not in MODULES]
    if unknown:
        raise ConfigError(name, f"unknown module {unknown[0]!r}; allowed: {', '.join(MODULES)}")
    return items


def _triggers(name: str, value: Any) -> tuple[str, ...] | None:
    return None if value is None else _str_list(name, value)


def _int(minimum: int, optional: bool = False, maximum: int | None = None) -> Callable[[str, Any], Any]:
    def parse(name: str, value: Any) -> int | None:
        if optional and (value is None or value == "" or value == "none"):
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        too_big = maximum is not None and isinstance(value, int) and value > maximum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
            bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            allowed = f"an integer {bounds}" + (" or None" if optional else "")
            raise ConfigError(name, f"expected {allowed}, got {value!r}")
        return value

    return parse


def _float(
    minimum: float, exclusive: bool = False, maximum: float | None = None
) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        bad = isinstance(value, bool) or not isinstance(value, (int, float))
        if not bad:
            bad = value <= minimum if exclusive else value < minimum
        if bad or value != value or value in (float("inf"), float("-inf")):
            relation = ">" if exclusive else ">="
            raise ConfigError(name, f"expected a number of seconds {relation} {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ConfigError(name, f"expected a number of seconds <= {maximum}, got {value!r}")
        return float(value)

    return parse


def _queues(name: str, value: Any) -> dict[str, int] | None:
    """``None`` (all defined queues), ``"a:3,b"``, ``["a", "b"]`` or ``{"a": 3, "b": 1}``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, (list, tuple)):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(name, f"expected queue names like 'emails' or 'emails:3', got {item!r}")
            qname, _, weight = item.partition(":")
            pairs[qname.strip()] = weight.strip() or 1
        value = pairs
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(name, f"expected queue names with optional weights, got {value!r}")
    weights: dict[str, int] = {}
    for qname, weight in value.items():
        if not isinstance(qname, str) or not QUEUE_NAME_RE.match(qname):
            raise ConfigError(name, f"invalid queue name {qname!r}")
        weights[qname] = _int(1)(f"{name}[{qname}] weight", weight)
    return weights


def _clustering(name: str, value: Any) -> Clustering:
    if isinstance(value, Clustering):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(name, f"expected JSON like {{\"total_shards\": 4}}, got {value!r}") from None
    if isinstance(value, Mapping) and "clustering" in value:  # accept scheduler={"clustering": {...}}
        value = value["clustering"]
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"expected a mapping with total_shards/owned_shards/region, got {value!r}")
    extra = set(value) - {"total_shards", "owned_shards", "region"}
    if extra:
        allowed = "total_shards, owned_shards, region"
        raise ConfigError(name, f"unknown key {sorted(extra)[0]!r}; allowed: {allowed}")
    total = _int(1)(f"{name}.total_shards", value.get("total_shards", 1))
    owned_raw = value.get("owned_shards")
    owned = tuple(range(total)) if owned_raw is None else owned_raw
    if isinstance(owned, str):
        owned = [o for o in owned.split(",") if o.strip()]
    if not isinstance(owned, (list, tuple)) or not owned:
        raise ConfigError(f"{name}.owned_shards", f"expected a non-empty list of shard ids, got {owned!r}")
    shards = []
    for shard in owned:
        number = _int(0)(f"{name}.owned_shards", shard)
        assert number is not None
        if number >= total:
            raise ConfigError(f"{name}.owned_shards", f"shard {number} is outside 0..{total - 1}")
        shards.append(number)
    region = _name(f"{name}.region", value.get("region", "default"))
    return Clustering(total_shards=total, owned_shards=tuple(sorted(set(shards))), region=region)


def _log_level(name: str, value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(name, f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _optional_str(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"expected a path, got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str, Any], Any]
    doc: str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("project", _name, "project part of the isolation prefix oqron:{project}:{environment}:"),
        Setting("environment", _name, "environment part of the isolation prefix"),
        Setting("storage", _url, "storage adapter URL (job records, schedules)"),
        Setting("broker", _url, "broker adapter URL (job ids, order, leases, delays)"),
        Setting("lock", _url, "lock adapter URL (leader election); several redis URLs = Redlock"),
        Setting("modules", _modules, "modules switched on: " + ", ".join(MODULES)),
        Setting("triggers", _triggers, "modules imported at start to register definitions"),
        Setting("workers", _int(1), "children per master"),
        Setting("queues", _queues, "queues this node consumes, e.g. 'emails:3,reports'"),
        Setting("lease_ttl", _float(0.0, exclusive=True), "seconds a claimed job stays leased"),
        Setting("max_stalled_count", _int(0), "stalls tolerated before a job fails"),
        Setting("max_jobs_per_child", _int(1, optional=True), "recycle a child after N jobs"),
        Setting("prefetch", _int(1, maximum=MAX_PREFETCH),
                "most jobs a child takes at once while they run short (1: one by one)"),
        Setting("reply_poll", _float(0.0, maximum=MAX_REPLY_POLL),
                "seconds a producer polls for Redis's reply to an add before sleeping (0: off)"),
        Setting("max_memory_per_child", _int(1, optional=True), "recycle a child above N MiB RSS"),
        Setting("graceful_timeout", _float(0.0), "warm shutdown: seconds running jobs may finish"),
        Setting("kill_grace", _float(0.0), "hard timeout: seconds between SIGTERM and SIGKILL"),
        Setting("clustering", _clustering, "sharded leadership: total_shards, owned_shards, region"),
        Setting("log_level", _log_level, "logging level: " + ", ".join(LOG_LEVELS)),
        Setting("pidfile", _optional_str, "file the master writes its pid to"),
    )
}


def _parse_all(values: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key == "scheduler":  # DESIGN spells it scheduler.clustering
            key = "clustering"
        setting = SETTINGS.get(key)
        if setting is None:
            raise ConfigError(key, f"unknown setting; allowed: {', '.join(SETTINGS)}")
        parsed[key] = setting.parse(key, value)
    return parsed


def define_config(**fields: Any) -> Config:
    """Build a ``Config`` from keyword fields; every value is validated."""
    return Config(**_parse_all(fields))


def explicit_fields(config: Config) -> dict[str, Any]:
    """The fields of ``config`` that differ from the defaults (used to layer config sources)."""
    default = Config()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(Config)
        if getattr(config, f.name) != getattr(default, f.name)
    }


def config_from_file(path: str) -> Config:
    """Import a Python config file and return its ``config`` object."""
    if not os.path.exists(path):
        raise ConfigError("config", f"file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location("oqron_user_config", path)
    if spec is None or spec.loader is None:
        raise ConfigError("config", f"cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = getattr(module, "config", None)
    if not isinstance(config, Config):
        raise ConfigError("config", f"{path!r} must define `config = define_config(...)`")
    return config


def config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in SETTINGS:
        raw = env.get("OQRON_" + name.upper())
        if raw is not None:
            values[name] = raw
    if "OQRON_SCHEDULER" in env and "clustering" not in values:
        values["clustering"] = env["OQRON_SCHEDULER"]
    return _parse_all(values)


def load_config(
    path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    base: Config | None = None,
) -> Config:
    """Resolve the configuration: defaults → file → ``OQRON_*`` → ``overrides``.

    ``base`` replaces the file layer (a ``Config`` passed to ``OqronKit.init``).
    """
    env = os.environ if env is None else env
    layers: dict[str, Any] = {}
    if base is not None:
        layers.update(explicit_fields(base))
    else:
        path = path or env.get("OQRON_CONFIG") or None
        if path is None and os.path.exists("oqron_config.py"):
            path = "oqron_config.py"
        if path is not None:
            layers.update(explicit_fields(config_from_file(path)))
    layers.update(config_from_env(env))
    layers.update(_parse_all({k: v for k, v in (overrides or {}).items() if v is not None}))
    return Config(**layers)


def names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
