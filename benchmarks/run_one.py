"""One benchmark step in the framework's own venv; writes its figures as JSON to ``--out``.

    <venv>/bin/python -m benchmarks.run_one --framework celery --workload e2e \
        --redis redis://127.0.0.1:PORT/0 --params '{"n": 20000}' --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback

import redis

from . import workloads
from .frameworks import load


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_one")
    parser.add_argument("--framework", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    # TERM unwinds the step like an error, so that what it started (private Redis servers of
    # the depth step, workers) is stopped by its own cleanup.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    params = json.loads(args.params)
    os.environ["BENCH_REDIS"] = args.redis  # the task modules read it, here and in the workers
    result: dict = {"framework": args.framework, "workload": args.workload}
    started = time.monotonic()
    driver = None
    try:
        r = redis.Redis.from_url(args.redis)
        driver = load(args.framework, args.redis, **params.get("driver", {}))
        result["version"] = driver.version()
        if args.workload in workloads.WORKLOADS:
            figures = workloads.WORKLOADS[args.workload](driver, r, params)
        else:
            from . import oqron_extras

            figures = oqron_extras.WORKLOADS[args.workload](driver, r, params)
        result.update(ok=True, **figures)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an error entry
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
    finally:
        if driver is not None:
            driver.close()
    result["step_seconds"] = time.monotonic() - started
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
