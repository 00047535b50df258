"""The suite behind `bench/run`: runs each benchmark, prints the table, writes results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.common import ROOT, Row, machine
from bench import placeholders

# name → module with run(quick, workdir) -> list[Row]; None: not built yet (bench/placeholders.py)
BENCHMARKS: dict[str, str | None] = {
    "replay": "bench.bench_replay",
    "close": "bench.bench_close",
    "history": "bench.bench_history",
    "simulate": "bench.bench_simulate",
    "stream": "bench.stream_adapter",
    "publish": "bench.bench_publish",
    "settlement": "bench.bench_settle",
    "investigation": "bench.bench_investigate",
    "api": "bench.bench_api",
    "demo": "bench.bench_demo",
}
RESULTS = ROOT / "bench" / "results.json"


def _git() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--", "epochal", "scoring", "payouts", "streams", "analytics")
    return {"commit": git("rev-parse", "HEAD"), "engine_dirty": bool(dirty)}


def _status(rows: list[Row]) -> str:
    if rows and all(r.note == "not built yet" for r in rows):
        return "not built yet"
    budgeted = [r for r in rows if r.passed is not None]
    if not budgeted:
        return "reported"
    if all(r.passed for r in budgeted):
        return "pass"
    return "fail" if any(r.enforced for r in budgeted if not r.passed) else "over budget (quick: not enforced)"


def _num(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if unit == "events/s":
        return f"{x:,.0f} ev/s"
    if unit == "pings/s":
        return f"{x:,.0f} pings/s"
    if unit == "MB":
        return f"{x:,.0f} MB"
    if unit == "s":
        return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"
    return f"{x:.3g}"


def _print_table(results: dict, quick: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(150, Console().width))
    title = f"epochal benchmarks ({'quick' if quick else 'full'}) — {results['machine'].get('cpu', '?')}, " \
            f"{results['machine'].get('cpus')} cores"
    table = Table(title=title, show_lines=False)
    for col, kw in (("benchmark", {}), ("figure", {}), ("value", {"justify": "right"}),
                    ("baseline", {"justify": "right"}), ("ratio", {"justify": "right"}),
                    ("budget", {}), ("result", {})):
        table.add_column(col, **kw)
    notes = []
    for name, b in results["benchmarks"].items():
        if b["status"] == "error":
            table.add_row(name, "—", "—", "—", "—", "—", "[bold red]ERROR[/]")
            notes.append(f"{name}: {b['error'].splitlines()[-1] if b['error'] else 'error'}")
            continue
        for r in b["rows"]:
            if r["note"] == "not built yet":
                table.add_row(name, r["metric"], "—", "—", "—", "—", "[dim]not built yet[/]")
                continue
            if r["passed"] is None:
                res = "[dim]report[/]"
            elif r["passed"]:
                res = "[green]PASS[/]"
            else:
                res = "[red]FAIL[/]" if r["enforced"] else "[yellow]over (quick)[/]"
            base = _num(r["baseline"], r["unit"]) + (f" ({r['baseline_label']})" if r["baseline_label"] else "")
            ratio = "—" if r["ratio"] is None else (f"{r['ratio']:.2f}×" if r["ratio"] >= 0.1 else f"{r['ratio']:.3f}×")
            table.add_row(name, r["metric"], _num(r["value"], r["unit"]), base if r["baseline"] is not None else "—",
                          ratio, r["budget"] or "—", res)
            if r["note"]:
                notes.append(f"{r['metric']}: {r['note']}")
    console.print(table)
    for n in notes:
        console.print(f"  [dim]•[/] {n}", highlight=False, soft_wrap=True)
    console.print(f"wrote {results['path']} in {results['duration_s']:.0f} s")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (< 3 min); budgets reported, not enforced")
    ap.add_argument("--only", nargs="+", choices=[k for k, v in BENCHMARKS.items() if v], default=None)
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (bench/results.json)")
    ap.add_argument("--engine", type=Path, default=None, help="the checkout whose engine to measure")
    ap.add_argument("--rev", default=None,
                    help="measure the engine of this git revision (e.g. HEAD), exported to a scratch directory, "
                         "so that uncommitted edits in the working tree are not measured")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch space (default: a temp dir)")
    a = ap.parse_args(argv)
    if a.engine is not None:
        if not (a.engine / "epochal").is_dir():
            print(f"bench/run: {a.engine} holds no epochal/ package", file=sys.stderr)
            return 2
        os.environ["EPOCHAL_BENCH_ENGINE"] = str(a.engine.resolve())

    export_dir = None
    git_info = _git()
    if a.rev is not None:
        export_dir = tempfile.TemporaryDirectory(prefix="epochal-bench-engine-", dir=a.workdir)
        try:
            commit = subprocess.run(["git", "rev-parse", "--verify", a.rev + "^{commit}"], cwd=ROOT, check=True,
                                    capture_output=True, text=True).stdout.strip()
            archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", export_dir.name], input=archive, check=True)
        except subprocess.CalledProcessError as exc:
            print(f"bench/run: cannot export revision {a.rev}: {(exc.stderr or b'')!s:.200}", file=sys.stderr)
            return 2
        os.environ["EPOCHAL_BENCH_ENGINE"] = export_dir.name
        git_info = {"commit": commit, "engine_dirty": False, "rev": a.rev}

    t_start = time.perf_counter()
    results: dict = {
        "suite": "epochal bench",
        "mode": "quick" if a.quick else "full",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_info,
        "engine": os.environ.get("EPOCHAL_BENCH_ENGINE", str(ROOT)),
        "benchmarks": {},
    }
    names = a.only or list(BENCHMARKS)
    for name in names:
        mod = BENCHMARKS[name]
        print(f"[{name}]", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        entry: dict = {"status": "", "duration_s": 0.0, "rows": [], "error": None}
        try:
            if mod is None:
                rows = placeholders.rows(name)
            else:
                with tempfile.TemporaryDirectory(prefix=f"epochal-bench-{name}-", dir=a.workdir) as tmp:
                    rows = importlib.import_module(mod).run(a.quick, Path(tmp))
            entry["rows"] = [r.as_dict() for r in rows]
            entry["status"] = _status(rows)
        except Exception:  # a benchmark that cannot run is reported, and the others still run
            entry["status"] = "error"
            entry["error"] = traceback.format_exc()
            print(entry["error"], file=sys.stderr)
        entry["duration_s"] = time.perf_counter() - t0
        results["benchmarks"][name] = entry

    results["figures"] = {
        f"{name}/{r['metric']}": r["value"]
        for name, b in results["benchmarks"].items() for r in b["rows"] if r["value"] is not None
    }
    results["budgets"] = [
        {"benchmark": name, "metric": r["metric"], "budget": r["budget"], "value": r["value"], "unit": r["unit"],
         "ratio": r["ratio"], "passed": r["passed"], "enforced": r["enforced"]}
        for name, b in results["benchmarks"].items() for r in b["rows"] if r["budget"]
    ]
    results["duration_s"] = time.perf_counter() - t_start
    results["path"] = str(a.out)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _print_table(results, a.quick)
    if export_dir is not None:
        export_dir.cleanup()

    if any(b["status"] == "error" for b in results["benchmarks"].values()):
        return 2
    if not a.quick and any(bd["passed"] is False and bd["enforced"] for bd in results["budgets"]):
        return 1
    return 0
