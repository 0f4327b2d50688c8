"""``python -m benchmarks``: run the workloads on every framework and print/save the report.

Run from the repository root with the project venv (``.venv/bin/python -m benchmarks``). The
peers are installed into ``benchmarks/.venv-peers`` on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import report, services
from .frameworks import NAMES, ROOT
from .procs import kill_tagged, step_env
from .workloads import calibrate

COMMON = ["enqueue_one", "enqueue_bulk", "e2e", "cpu", "latency"]
OQRON_ONLY = ["depth", "crash", "failover", "dead_node", "e2e_sqlite", "e2e_hybrid"]
PROJECT_PYTHON = Path(sys.executable)
#: The run must end within 20 minutes on a fresh machine; a slow VM gets fewer rounds.
BUDGET = 17 * 60.0

NOTES = [
    "Every framework gets 2 worker processes: Celery prefork `-c 2`, RQ `worker-pool -n 2` (each "
    "worker forks a work horse per job, RQ's default), Dramatiq `--processes 2 --threads 1`, Huey "
    "`-k process -w 2`, oqron `oqron-master --workers 2`. Log levels are WARNING (Huey `-q`).",
    "All run on one private redis-server (no persistence) on a free port, flushed before every step; "
    "the producer and the workers share the machine's cores.",
    "The side-by-side workloads run in rounds (3 by default), after oqron's own steps: each round "
    "goes through every framework in turn, so that the VM's drift falls on all of them, and each "
    "figure is the median of its rounds (the rounds are kept in the JSON). A round after the first "
    "starts only if one as long as the longest so far still ends within the time budget (--budget, "
    "17 minutes), so that a slow machine finishes within 20 minutes with fewer rounds.",
    "Completions are counted in that Redis: every handler ends by writing one short script call "
    "(INCR; the first and the target completion are stamped with the server's clock) without "
    "waiting for its reply. That adds the same write per job to every framework.",
    "enqueue one by one: N single adds after 100 warm-up adds, workers stopped. enqueue bulk: each "
    "library's bulk API (see the `how` field in the JSON): Celery `group().apply_async()` per 1,000, "
    "RQ `enqueue_many` in a pipeline per 1,000, oqron `add_bulk`; Dramatiq and Huey have none (loop).",
    "end-to-end: N no-op jobs are enqueued with no worker running, then the worker starts. The "
    "headline figure is (N-1) / (last completion - first completion); 'incl. worker start' is "
    "N / (last completion - worker process start). The slow drainers drain fewer jobs "
    "(max_drain_jobs) to keep the run within its time budget: RQ 1,500 (it forks per job), Celery "
    "and Dramatiq 5,000; Celery also bulk-enqueues 5,000 (max_bulk_jobs). oqron on SQLite and on "
    "PostgreSQL + Redis drains 5,000.",
    "CPU-bound: 200 jobs of a pure-Python loop calibrated to ~20 ms in the orchestrator; efficiency = "
    "(CPU seconds the handlers spent in the loop, measured inside them with thread_time) / 2 / "
    "(last completion - first completion + one job). The calibrated ideal is kept in the JSON "
    "(efficiency_vs_calibration) but the VM's CPU speed drifts too much between calibration and run.",
    "latency: with the worker idle, jobs are added 10 ms apart carrying time.time(); the handler "
    "pushes (its start time - that time) to a Redis list. Percentiles are nearest-rank. A framework "
    "that cannot run 100 jobs/s (RQ) builds a backlog, so its latency is mostly queueing time.",
    "oqron only: queue depth drains 20,000 jobs from a queue holding D jobs (D added with "
    "add_bulk in chunks of 20,000 before the master starts), five times, deleting the records "
    "each drain completed and topping the queue back up to D between drains (so every drain runs "
    "against D records); each depth has a private Redis of its own and the drains go round "
    "the depths in turn; the figure is the median drain; crash = kill -9 of the child running a "
    "job on a queue with zero retry backoff, time until the job record leaves `active` (or the job "
    "starts again in the other child); failover = two masters, kill -9 of the leader's session, time "
    "until the lock `scheduler:leader` has a new owner; dead node = kill -9 of a whole master "
    "(lease_ttl 10 s) while its child runs a job, time until the other master's child starts it.",
]


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.token = secrets.token_hex(4)
        self.step_no = 0
        self.current: subprocess.Popen[bytes] | None = None
        self.current_tag: str | None = None
        self.logs = Path(tempfile.mkdtemp(prefix="oqron-bench-logs-"))
        self.redis = services.PrivateRedis()
        self.results: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, str] = {}
        self.peers_python: Path | None = None
        self.began = time.monotonic()
        self.rounds_planned = self.rounds_run = 0

    # --- steps -----------------------------------------------------------------------------

    def python_for(self, framework: str) -> Path:
        if framework == "oqron":
            return PROJECT_PYTHON
        if self.peers_python is None:
            self.peers_python = services.peers_python(self.logs / "pip.log")
        return self.peers_python

    def step(self, framework: str, workload: str, params: dict[str, Any], timeout: float,
             key: str | None = None, runner: str | None = None) -> dict[str, Any]:
        key = key or workload
        self.step_no += 1
        label = f"[{self.step_no:2d}] {framework:8s} {key:14s}"
        print(label, end=" ", flush=True)
        self.redis.flush()
        out = self.logs / f"{self.step_no:02d}-{framework}-{key}.json"
        params = {"log_dir": str(self.logs), "timeout": timeout, **params}
        tag = self.current_tag = f"{self.token}-{self.step_no}"
        argv = [str(self.python_for(framework)), "-m", "benchmarks.run_one", "--framework", framework,
                "--workload", runner or workload, "--redis", self.redis.url,
                "--params", json.dumps(params), "--out", str(out)]
        env = {**os.environ, **step_env(tag), "PYTHONPATH": ROOT}
        exclude = {self.redis.process.pid} if self.redis.process is not None else set()
        foreign = services.ForeignLoad(self.token, exclude).start()
        started = time.monotonic()
        result: dict[str, Any]
        try:
            with open(self.logs / f"{self.step_no:02d}-{framework}-{key}.log", "wb") as log:
                self.current = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
                self.current.wait(timeout + 60)
            result = json.loads(out.read_text())
        except subprocess.TimeoutExpired:
            result = {"ok": False, "error": f"step did not finish within {timeout + 60:.0f} s"}
        except (OSError, ValueError) as exc:
            result = {"ok": False, "error": f"no result ({exc}); see {self.logs}"}
        finally:
            self.kill_current()
        result["step_seconds"] = time.monotonic() - started
        result["foreign_cpu_cores"] = round(foreign.stop(), 2)
        self.results.setdefault(framework, {})[key] = result
        if result.get("version"):
            self.versions[framework] = result["version"]
        print(f"{self.summary(result)} ({result['step_seconds']:.0f} s)", flush=True)
        return result

    def split_depths(self) -> None:
        """The depth step's figures as one entry per depth (``depth_<n>``), as the report reads."""
        steps = self.results.get("oqron", {})
        step = steps.pop("depths", None)
        if step is None:
            return
        if not step.get("ok"):
            for depth in self.args.depths:
                steps[f"depth_{depth}"] = step
            return
        shared = {k: v for k, v in step.items() if k != "by_depth"}
        for depth, figures in step["by_depth"].items():
            steps[f"depth_{depth}"] = {**shared, "workload": "depth", **figures}

    def merge_rounds(self, framework: str, workload: str, rounds: int) -> None:
        """One entry per workload: the median of its rounds for every figure, the rounds kept."""
        steps = self.results.get(framework, {})
        runs = [steps.pop(f"{workload}#{n + 1}") for n in range(rounds) if f"{workload}#{n + 1}" in steps]
        good = [run for run in runs if run.get("ok")]
        if not good:
            if runs:
                steps[workload] = runs[0]
            return
        merged = dict(good[0])
        for field, value in good[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                middle = statistics.median(run[field] for run in good if field in run)
                merged[field] = round(middle) if isinstance(value, int) else middle
        merged["rounds"] = runs
        steps[workload] = merged

    @staticmethod
    def summary(result: dict[str, Any]) -> str:
        if not result.get("ok"):
            return "ERROR " + str(result.get("error", ""))[:160]
        for field, fmt in (("jobs_s", "{:,.0f} jobs/s"), ("efficiency", "{:.1%}"),
                           ("p50_ms", "p50 {:.2f} ms"), ("ms", "{:.1f} ms"), ("s", "{:.2f} s")):
            if field in result:
                text = fmt.format(result[field])
                if field == "p50_ms":
                    text += f", p99 {result['p99_ms']:.2f} ms"
                return text
        return "ok"

    def busy_steps(self) -> list[str]:
        """Steps during which other processes used more than 0.2 of a core on average."""
        return [f"{framework} {key} ({step['foreign_cpu_cores']:.2f} cores)"
                for framework, steps in self.results.items() for key, step in steps.items()
                if step.get("foreign_cpu_cores", 0) > 0.2]

    def kill_current(self) -> None:
        if self.current is not None:
            try:
                os.killpg(self.current.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.current.wait()
            self.current = None
        if self.current_tag is not None:
            kill_tagged(self.current_tag)
            self.current_tag = None

    # --- the whole run ---------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        quick = self.args.quick
        jobs = self.args.jobs or (2000 if quick else 20_000)
        return {
            "enqueue_one": 1000 if quick else 5000,
            "enqueue_bulk": jobs,
            "e2e": jobs,
            "cpu": 40 if quick else 200,
            "latency": 100 if quick else 500,
            "depth_n": jobs,
            "other_backends": min(jobs, 5000),  # SQLite, PostgreSQL: 200-600 jobs/s on a slow VM
            "trials": 1 if quick else 3,
        }

    def execute(self) -> None:
        """oqron's own steps first, then the side-by-side rounds while the time budget allows."""
        self.redis.start()
        if "oqron" in self.args.frameworks:
            self.oqron_only(self.counts())
        self.side_by_side(self.counts())

    def side_by_side(self, counts: dict[str, Any]) -> None:
        """Rounds go through every framework in turn, so that the VM's drift is shared. A round
        starts only if one more as long as the longest so far still ends within the budget."""
        args = self.args
        workloads = [w for w in COMMON if w in args.workloads]
        if not workloads:
            return
        for framework in args.frameworks:  # installs the peers now, not inside a timed round
            self.python_for(framework)
        loops = calibrate() if "cpu" in workloads else 0
        self.rounds_planned = args.rounds or (1 if args.quick else 3)
        longest = 0.0
        for number in range(self.rounds_planned):
            if number and time.monotonic() - self.began + longest > args.budget:
                print(f"time budget: {number} of {self.rounds_planned} rounds run "
                      f"(a round takes up to {longest:.0f} s, the budget is {args.budget:.0f} s)", flush=True)
                break
            started = time.monotonic()
            for framework in args.frameworks:
                for workload in workloads:
                    params: dict[str, Any] = {"n": counts[workload]}
                    timeout = 120.0
                    if workload == "e2e":
                        timeout = 300.0
                    elif workload == "cpu":
                        params["loops"] = loops
                    self.step(framework, workload, params, timeout, key=f"{workload}#{number + 1}")
            self.rounds_run = number + 1
            longest = max(longest, time.monotonic() - started)
        for framework in args.frameworks:
            for workload in workloads:
                self.merge_rounds(framework, workload, self.rounds_run)

    def oqron_only(self, counts: dict[str, Any]) -> None:
        args, workloads = self.args, self.args.workloads
        if "depth" in workloads:
            timeout = 120 + sum(args.depths) / 5000 + 30 * len(args.depths)  # 1M adds: a minute here
            self.step("oqron", "depth", {"depths": args.depths, "n": counts["depth_n"]}, timeout,
                      key="depths", runner="depths")
            self.split_depths()
        if "crash" in workloads:
            self.step("oqron", "crash", {"trials": counts["trials"], "driver": {
                "app": "benchmarks.tasks.oqron_crash_tasks", "queue": "crashy"}}, 120)
        if "failover" in workloads:
            self.step("oqron", "failover", {"trials": min(2, counts["trials"])}, 120)
        if "dead_node" in workloads:
            self.step("oqron", "dead_node", {"lease_ttl": 10.0}, 120)
        if "e2e_sqlite" in workloads:
            db = self.logs / "bench.db"
            url = f"sqlite:///{db}"
            urls = {"storage": url, "broker": url, "lock": url}
            self.step("oqron", "e2e", {"n": counts["other_backends"], "driver": urls}, 300, key="e2e_sqlite")
        if "e2e_hybrid" in workloads:
            try:
                scratch = services.ScratchPostgres().create()
            except Exception as exc:  # noqa: BLE001 - no PostgreSQL: an error entry, not a crash
                self.results.setdefault("oqron", {})["e2e_hybrid"] = {
                    "ok": False, "error": f"cannot create a scratch database: {exc}"}
                return
            try:
                self.pg_version = scratch.version()
                params = {"n": counts["other_backends"], "driver": {"storage": scratch.url}}
                self.step("oqron", "e2e", params, 300, key="e2e_hybrid")
            finally:
                scratch.drop()

    def close(self) -> None:
        self.kill_current()
        self.redis.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", default=",".join(NAMES),
                        help=f"comma-separated subset of {','.join(NAMES)} (default: all)")
    parser.add_argument("--workloads", default=",".join(COMMON + OQRON_ONLY),
                        help=f"comma-separated subset of {','.join(COMMON + OQRON_ONLY)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a few minutes")
    parser.add_argument("--jobs", type=int, help="jobs for bulk enqueue and end-to-end (default 20000)")
    parser.add_argument("--depths", default=None,
                        help="queue depths for oqron (default 10000,100000,1000000; --quick 10000,50000)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of the side-by-side workloads, median reported (default 3; --quick 1)")
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help=f"seconds the run may take; rounds after the first are skipped if one more "
                             f"would pass it (default {BUDGET:.0f})")
    parser.add_argument("--out-dir", default=str(Path(ROOT) / "benchmarks" / "results"))
    parser.add_argument("--no-save", action="store_true", help="print only, write no result files")
    args = parser.parse_args(argv)
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    args.workloads = [w for w in args.workloads.split(",") if w]
    for name in args.frameworks:
        if name not in NAMES:
            parser.error(f"unknown framework {name!r} (choose from {', '.join(NAMES)})")
    for name in args.workloads:
        if name not in COMMON + OQRON_ONLY:
            parser.error(f"unknown workload {name!r} (choose from {', '.join(COMMON + OQRON_ONLY)})")
    depths = args.depths or ("10000,50000" if args.quick else "10000,100000,1000000")
    args.depths = [int(d) for d in depths.split(",") if d]
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    date = datetime.now().strftime("%Y-%m-%d %H:%M")
    run = Run(args)
    # TERM ends the run like Ctrl-C: the finally below stops every process started.
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        run.execute()
        redis_version = run.redis.version()
    except KeyboardInterrupt:
        interrupted = True
        redis_version = "?"
        print("\ninterrupted: stopping workers and Redis", flush=True)
    finally:
        run.close()
    full = {
        "date": date,
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "interrupted": interrupted,
        "frameworks": args.frameworks,
        "workloads": args.workloads,
        "versions": run.versions,
        "redis_version": redis_version,
        "postgres_version": getattr(run, "pg_version", None),
        "environment": services.machine(),
        "results": run.results,
        "notes": NOTES,
        "wall_seconds": time.monotonic() - began,
        "rounds": {"planned": run.rounds_planned, "run": run.rounds_run, "budget_s": args.budget},
        "busy_steps": run.busy_steps(),
        "logs": str(run.logs),
    }
    print()
    print(report.render(full, markdown=False))
    if full["busy_steps"]:
        print("\nwarning: other processes used CPU during these steps: "
              + ", ".join(full["busy_steps"]))
    print(f"\nwall time {full['wall_seconds']:.0f} s{report.rounds_note(full)}; logs in {run.logs}")
    if not args.no_save and not interrupted:
        for path in report.save(full, Path(args.out_dir)):
            print(f"wrote {path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
