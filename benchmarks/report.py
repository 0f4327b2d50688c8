"""Tables of the figures, oqron's ratio to the best peer, and the JSON + Markdown files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEERS = ("celery", "rq", "dramatiq", "huey")

#: (label, workload, field, higher is better (None: a reference, no ratio), format)
METRICS: list[tuple[str, str, str, bool | None, str]] = [
    ("enqueue one by one (jobs/s)", "enqueue_one", "jobs_s", True, "{:,.0f}"),
    ("enqueue bulk (jobs/s)", "enqueue_bulk", "jobs_s", True, "{:,.0f}"),
    ("end-to-end no-op (jobs/s)", "e2e", "jobs_s", True, "{:,.0f}"),
    ("end-to-end incl. worker start (jobs/s)", "e2e", "jobs_s_from_start", True, "{:,.0f}"),
    ("CPU-bound efficiency (%)", "cpu", "efficiency", True, "{:.1%}"),
    ("  same jobs in bare processes, same step (%)", "cpu", "bare_efficiency", None, "{:.1%}"),
    ("latency p50 (ms)", "latency", "p50_ms", False, "{:.2f}"),
    ("latency p95 (ms)", "latency", "p95_ms", False, "{:.2f}"),
    ("latency p99 (ms)", "latency", "p99_ms", False, "{:.2f}"),
]


def _figure(results: dict[str, dict[str, Any]], framework: str, workload: str, field: str) -> float | None:
    step = results.get(framework, {}).get(workload)
    if not step or not step.get("ok"):
        return None
    value = step.get(field)
    return float(value) if value is not None else None


def _cell(value: float | None, fmt: str, step: dict[str, Any] | None) -> str:
    if value is not None:
        return fmt.format(value).replace("%", " %") if "%" in fmt else fmt.format(value)
    if step and not step.get("ok"):
        return "error"
    return "-"


def comparison_rows(results: dict[str, dict[str, Any]], frameworks: list[str]) -> list[list[str]]:
    peers = [f for f in frameworks if f in PEERS]
    rows = []
    for label, workload, field, higher, fmt in METRICS:
        if not any(workload in results.get(f, {}) for f in frameworks):
            continue
        row = [label]
        for framework in frameworks:
            row.append(_cell(_figure(results, framework, workload, field), fmt,
                             results.get(framework, {}).get(workload)))
        values = {p: v for p in peers if (v := _figure(results, p, workload, field)) is not None}
        ours = _figure(results, "oqron", workload, field)
        if higher is None:
            rows.append([*row, "-", "-", "reference"])
            continue
        if values:
            best = max(values, key=values.__getitem__) if higher else min(values, key=values.__getitem__)
            row.append(f"{best} {_cell(values[best], fmt, None)}")
            row.append(f"{ours / values[best]:.2f}" if ours is not None and values[best] else "-")
        else:
            row += ["-", "-"]
        row.append("higher" if higher else "lower")
        rows.append(row)
    return rows


def oqron_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """oqron-only figures with the targets of DESIGN.md §10."""
    steps = results.get("oqron", {})
    rows: list[list[str]] = []

    def ok(name: str) -> dict[str, Any] | None:
        step = steps.get(name)
        return step if step and step.get("ok") else None

    depths = sorted((s for k, s in steps.items() if k.startswith("depth_") and s.get("ok")),
                    key=lambda s: s["depth"])
    for step in depths:
        rows.append([f"drain {step['jobs']:,} of a queue {step['depth']:,} deep (jobs/s, median of "
                     f"{step.get('repeats', 1)})",
                     f"{step['jobs_s']:,.0f}", f"(add_bulk {step['enqueue_jobs_s']:,.0f} jobs/s)"])
    if len(depths) >= 2:
        spread = max(s["jobs_s"] for s in depths) / min(s["jobs_s"] for s in depths) - 1
        rows.append(["throughput spread over depths", f"{spread:.1%}", "target ≤ 10 %"])
    for name, step in steps.items():
        if name.startswith("depth_") and not step.get("ok"):
            rows.append([f"queue depth {name[6:]}", "error", step.get("error", "")[:80]])
    if step := ok("crash"):
        rows.append(["child kill -9 → job requeued (ms, median)", f"{step['ms']:.1f}",
                     f"target ≤ 100 ms; max {step['max_ms']:.1f}, running again {step['rerun_ms']:.1f}"])
    if step := ok("failover"):
        rows.append(["leader kill -9 → new leader (s, median)", f"{step['s']:.2f}",
                     f"target ≤ 3 s; max {step['max_s']:.2f}"])
    if step := ok("dead_node"):
        rows.append(["dead node's job running again (s)", f"{step['s']:.2f}",
                     f"target ≤ lease_ttl + 2 = {step['target_s']:.0f} s"])
    for name, label in (("e2e", "end-to-end no-op on Redis (jobs/s)"),
                        ("e2e_sqlite", "end-to-end no-op on SQLite (jobs/s)"),
                        ("e2e_hybrid", "end-to-end no-op, PostgreSQL storage + Redis (jobs/s)")):
        if step := ok(name):
            rows.append([label, f"{step['jobs_s']:,.0f}", f"{step['jobs']:,} jobs"])
    for name in ("crash", "failover", "dead_node", "e2e_sqlite", "e2e_hybrid"):
        step = steps.get(name)
        if step and not step.get("ok"):
            rows.append([name, "error", step.get("error", "")[:80]])
    return rows


def errors(results: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{framework} {workload}: {step.get('error')}"
            for framework, steps in results.items() for workload, step in steps.items()
            if not step.get("ok")]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render(report: dict[str, Any], markdown: bool) -> str:
    frameworks = report["frameworks"]
    results = report["results"]
    table = markdown_table if markdown else text_table
    parts = []
    rows = comparison_rows(results, frameworks)
    if rows:
        header = ["metric", *frameworks, "best peer", "oqron ÷ best", "better"]
        parts.append(table(header, rows))
    rows = oqron_rows(results)
    if rows:
        parts.append(table(["oqron only", "figure", "note"], rows))
    failed = errors(results)
    if failed:
        parts.append("Errors:\n" + "\n".join(f"- {e}" for e in failed))
    return "\n\n".join(parts)


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(report["versions"].items()))
    notes = "\n".join(f"- {n}" for n in report["notes"])
    busy = ""
    if report.get("busy_steps"):
        busy = ("Warning: processes other than the benchmark's used more than 0.2 core on average during "
                f"these steps (figures less reliable): {', '.join(report['busy_steps'])}.\n\n")
    return (
        f"# oqron benchmark, {report['date']}\n\n"
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['ram_gib']} GiB RAM, Linux {env['kernel']}; "
        f"Python {env['python']}; Redis {report['redis_version']}"
        + (f"; PostgreSQL {report['postgres_version']}" if report.get("postgres_version") else "")
        + f".\n\nVersions: {versions}.\n\n"
        f"Command: `{report['command']}` (wall time {report['wall_seconds']:.0f} s{rounds_note(report)}).\n\n"
        f"{render(report, markdown=True)}\n\n{busy}## Method\n\n{notes}\n"
    )


def rounds_note(report: dict[str, Any]) -> str:
    """How many side-by-side rounds ran, when the time budget cut them short."""
    rounds = report.get("rounds") or {}
    if rounds.get("run", 0) >= rounds.get("planned", 0):
        return ""
    return (f"; {rounds['run']} of {rounds['planned']} rounds: one more would have passed the "
            f"{rounds['budget_s']:.0f} s budget")


def save(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report["date"].replace(":", "").replace(" ", "-")
    if report.get("quick"):
        stem += "-quick"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
