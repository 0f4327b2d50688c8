"""Command line: ``oqron-master`` (the prefork master) and ``oqron`` (admin commands).

Every option is passed through the configuration's own parsers, so a bad value gives the same
one-line error (naming the field and what is allowed) as a bad config file or variable. User
errors exit 1 with one line on stderr; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from . import codec
from .adapters import shown_url
from .config import Config, load_config
from .container import Container
from .errors import AdapterError, ConfigError, JobFailed, OqronError
from .job import STATUSES, Job
from .modules.queue import Queue, UndeclaredQueue
from .registry import registry

log = logging.getLogger("oqron.cli")

ADAPTER_OPTIONS = (
    click.option("--config", "config_path", metavar="PATH", help="config file (default ./oqron_config.py)"),
    click.option("--storage", metavar="URL", help="storage adapter URL"),
    click.option("--broker", metavar="URL", help="broker adapter URL"),
    click.option("--lock", metavar="URL", help="lock adapter URL"),
    click.option("--project", help="project part of the isolation prefix"),
    click.option("--environment", help="environment part of the isolation prefix"),
    click.option("--app", "apps", multiple=True, metavar="MODULE", help="module(s) defining queues"),
)


def adapter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(ADAPTER_OPTIONS):
        command = option(command)
    return command


def fail(message: str) -> NoReturn:
    click.echo(f"{click.get_current_context().command_path}: {message}", err=True)
    sys.exit(1)


def resolve_config(config_path: str | None, overrides: dict[str, Any]) -> Config:
    try:
        return load_config(path=config_path, overrides=overrides)
    except ConfigError as exc:
        fail(str(exc))


def import_apps(config: Config, apps: Iterable[str]) -> list[str]:
    """Import the user's definition modules (``--app`` or ``triggers``, else ``jobs``)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    names = [n for item in apps for n in item.split(",") if n] or list(config.triggers or ())
    if not names and importlib.util.find_spec("jobs") is not None:
        names = ["jobs"]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            fail(f"cannot import app module {name!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - user code: report it in one line
            fail(f"app module {name!r} failed to import: {type(exc).__name__}: {exc}")
    return names


def connect(config: Config) -> Container:
    """Build the adapters and check once that every backend answers: a backend that is down at
    start is a clear one-line error, not a retry loop (a running master rides outages out)."""
    try:
        container = Container.init(config)
    except ConfigError as exc:
        fail(str(exc))
    except AdapterError as exc:
        fail(f"cannot reach the backend: {exc}")
    checks: list[tuple[str, Callable[[], object]]] = [
        ("storage", lambda: container.storage.get_job("__ping__")),
        ("broker", lambda: container.broker.is_paused("__ping__")),
        ("lock", lambda: container.lock.owner("__ping__")),
    ]
    for field, check in checks:
        try:
            check()
        except AdapterError as exc:
            url = shown_url(getattr(config, field))
            fail(f"cannot reach the backend: {field} {url}: {exc}")
    return container


# --- oqron-master -------------------------------------------------------------------------


@click.command(name="oqron-master", context_settings={"help_option_names": ["-h", "--help"]})
@adapter_options
@click.option("--workers", help="children to fork (default: CPU count)")
@click.option("--queues", help="queues to consume, e.g. 'emails:3,reports' (default: all defined)")
@click.option("--modules", help="modules to switch on (comma-separated)")
@click.option("--max-jobs-per-child", help="recycle a child after N jobs")
@click.option("--max-memory-per-child", help="recycle a child above N MiB RSS")
@click.option("--prefetch", help="most jobs a child takes at once while its jobs run short (1: one by one)")
@click.option("--graceful-timeout", help="seconds running jobs may finish on TERM")
@click.option("--lease-ttl", help="seconds a claimed job stays leased without renewal")
@click.option("--log-level", help="DEBUG, INFO, WARNING, ERROR")
@click.option("--log-file", metavar="PATH", help="log to this file (reopened on USR1)")
@click.option("--pidfile", metavar="PATH", help="write the master's pid here")
def master_command(
    config_path: str | None, apps: tuple[str, ...], log_file: str | None, **flags: Any
) -> None:
    """Start the prefork master: fork children that claim and run jobs."""
    from .runtime.master import Master

    config = resolve_config(config_path, flags)
    for field in ("storage", "broker", "lock"):
        if getattr(config, field).startswith("memory://"):
            fail(f"{field}: memory:// lives inside one process and cannot serve forked children; "
                 "use sqlite:///path, redis:// or postgresql://")
    setup_logging(config.log_level, log_file)
    import_apps(config, apps)
    queues = consumed_queues(config)
    connect(config)

    def reload() -> tuple[Config, dict[str, int]]:
        return reload_app(config_path, flags, apps)

    sys.exit(Master(config, queues, reload).run())


def consumed_queues(config: Config) -> dict[str, int]:
    if config.queues is not None:
        for name in config.queues:
            queue = registry.queues.get(name)
            if queue is None or queue.function is None:
                log.warning("queue %r has no handler on this node: its jobs will fail", name)
        return dict(config.queues)
    handled = registry.handled()
    if not handled:
        fail("no queue with a handler: define one in your app module (queue(...) + @q.handler)")
    return {name: 1 for name in handled}


def reload_app(
    config_path: str | None, flags: dict[str, Any], apps: tuple[str, ...]
) -> tuple[Config, dict[str, int]]:
    """HUP: re-read the config and re-import the app modules; on any error keep the old ones."""
    config = load_config(path=config_path, overrides=flags)
    names = [n for item in apps for n in item.split(",") if n] or list(config.triggers or ("jobs",))
    saved_modules = {k: v for k, v in sys.modules.items() if _belongs(k, names)}
    saved_queues, saved_crons = dict(registry.queues), dict(registry.crons)
    try:
        for module in saved_modules:
            del sys.modules[module]
        registry.clear()
        for name in names:
            importlib.import_module(name)
        queues = dict(config.queues) if config.queues else {n: 1 for n in registry.handled()}
        if not queues:
            raise OqronError("no queue with a handler after reload")
    except BaseException:
        sys.modules.update(saved_modules)
        registry.clear()
        registry.queues.update(saved_queues)
        registry.crons.update(saved_crons)
        raise
    current = Container.get().config
    if (config.storage, config.broker, config.lock, config.prefix) != (
        current.storage, current.broker, current.lock, current.prefix,
    ):
        Container.init(config)
    return config, queues


def _belongs(module: str, roots: list[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def master_main() -> None:
    master_command(prog_name="oqron-master")


# --- oqron (admin) ------------------------------------------------------------------------


@click.group(name="oqron", context_settings={"help_option_names": ["-h", "--help"]})
def admin() -> None:
    """Inspect and manage queues and jobs."""


def _open(config_path: str | None, apps: tuple[str, ...], **flags: Any) -> Container:
    config = resolve_config(config_path, flags)
    if apps:
        import_apps(config, apps)
    return connect(config)


def _queue(name: str) -> Queue:
    return registry.queues.get(name) or UndeclaredQueue(name)


def _job(container: Container, job_id: str) -> Job:
    record = container.storage.get_job(job_id)
    if record is None:
        fail(f"no job {job_id!r}")
    return Job(record, container.lifecycle)


@admin.command()
@adapter_options
@click.argument("queue")
@click.argument("data", default="null")
@click.option("--job-id", help="idempotent id: an existing job with this id is returned")
@click.option("--delay", type=float, help="seconds before the job may run")
@click.option("--priority", type=int, help="lower runs first (priority queues)")
@click.option("--wait", "wait", type=float, metavar="SECONDS", help="wait for the result and print it")
def enqueue(config_path: str | None, apps: tuple[str, ...], queue: str, data: str, job_id: str | None,
            delay: float | None, priority: int | None, wait: float | None, **flags: Any) -> None:
    """Add a job to QUEUE with DATA (JSON) and print its id (or its result with --wait)."""
    _open(config_path, apps, **flags)
    try:
        payload = json.loads(data)
    except ValueError as exc:
        fail(f"data: expected JSON, got {data!r} ({exc})")
    try:
        job = _queue(queue).add(payload, job_id=job_id, delay=delay, priority=priority)
    except (TypeError, ValueError, OqronError) as exc:
        fail(str(exc))
    if wait is None:
        click.echo(job.id)
        return
    try:
        click.echo(codec.dumps(job.wait(timeout=wait)))
    except JobFailed as exc:
        fail(str(exc))
    except TimeoutError as exc:
        fail(str(exc))


@admin.command()
@adapter_options
@click.argument("job_id")
def show(config_path: str | None, apps: tuple[str, ...], job_id: str, **flags: Any) -> None:
    """Print a job's record as JSON."""
    container = _open(config_path, apps, **flags)
    click.echo(json.dumps(_job(container, job_id).record, indent=2, ensure_ascii=False))


@admin.command()
@adapter_options
@click.argument("queue")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", type=int, default=20, show_default=True)
def jobs(config_path: str | None, apps: tuple[str, ...], queue: str, status: str | None, limit: int,
         **flags: Any) -> None:
    """List a queue's jobs, newest first."""
    _open(config_path, apps, **flags)
    for job in _queue(queue).get_jobs(status, limit=limit):
        error = (job.error or {}).get("type", "")
        click.echo(f"{job.id}\t{job.status}\tattempts={job.attempts_made}\t{error}")


@admin.command()
@adapter_options
def stats(config_path: str | None, apps: tuple[str, ...], **flags: Any) -> None:
    """Counts per status for every queue."""
    container = _open(config_path, apps, **flags)
    shown = ("waiting", "delayed", "active", "completed", "failed", "cancelled")
    click.echo("queue\t" + "\t".join(shown) + "\tpaused")
    for name in container.storage.queue_names():
        counts = [str(container.storage.count_jobs(name, s)) for s in shown]
        paused = "yes" if container.broker.is_paused(name) else "no"
        click.echo(f"{name}\t" + "\t".join(counts) + f"\t{paused}")


@admin.command()
@adapter_options
@click.argument("job_id")
def retry(config_path: str | None, apps: tuple[str, ...], job_id: str, **flags: Any) -> None:
    """Run a failed or cancelled job again."""
    container = _open(config_path, apps, **flags)
    if not _job(container, job_id).retry():
        fail(f"job {job_id} is not failed or cancelled")
    click.echo(f"{job_id} requeued")


@admin.command()
@adapter_options
@click.argument("job_id")
def cancel(config_path: str | None, apps: tuple[str, ...], job_id: str, **flags: Any) -> None:
    """Cancel a job that has not finished."""
    container = _open(config_path, apps, **flags)
    if not _job(container, job_id).cancel():
        fail(f"job {job_id} already finished")
    click.echo(f"{job_id} cancelled")


@admin.command()
@adapter_options
@click.argument("queue")
def pause(config_path: str | None, apps: tuple[str, ...], queue: str, **flags: Any) -> None:
    """Stop claims from QUEUE (jobs can still be added)."""
    _open(config_path, apps, **flags)
    _queue(queue).pause()
    click.echo(f"{queue} paused")


@admin.command()
@adapter_options
@click.argument("queue")
def resume(config_path: str | None, apps: tuple[str, ...], queue: str, **flags: Any) -> None:
    """Let claims from QUEUE start again."""
    _open(config_path, apps, **flags)
    _queue(queue).resume()
    click.echo(f"{queue} resumed")


@admin.command()
@adapter_options
def nodes(config_path: str | None, apps: tuple[str, ...], **flags: Any) -> None:
    """The masters alive in this project and environment."""
    import time

    from .runtime.nodes import live_nodes

    container = _open(config_path, apps, **flags)
    click.echo("node\thost\tpid\tregion\tworkers\tbusy\tleader shards\theartbeat")
    for node in live_nodes(container.storage):
        shards = ",".join(map(str, node.get("leader_shards") or [])) or "-"
        age = time.time() - node["heartbeat"]
        click.echo(f"{node['node_id']}\t{node['host']}\t{node['pid']}\t{node['region']}\t"
                   f"{node['workers']}\t{node['busy']}\t{shards}\t{age:.1f}s ago")


def admin_main() -> None:
    try:
        admin(prog_name="oqron")
    except AdapterError as exc:  # the backend went away after the start-up check
        click.echo(f"oqron: backend unavailable: {exc}", err=True)
        sys.exit(1)
