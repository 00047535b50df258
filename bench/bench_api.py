"""Benchmark of the buyer-facing API (`epochal serve`): latency under a steady load on loopback.

Budget (issue 17): with 100,000 nodes × 48 published epochs, `GET /nodes/{id}` p99 < 50 ms and
`GET /nodes?...` (filtered, a page of 50) p99 < 150 ms at 100 requests/s.

Set-up (untimed): a published folder of N nodes × E epochs. Building it through the simulator
and the close would take hours at this size, so the rows are generated directly in an
in-memory DuckDB with the store's own schema (`store.db.SCHEMA`) and published by the
writer itself (`store.published.publish_pending`): the files, their columns, row order and
manifests are exactly what a close publishes. The rows are consistent the way the API checks
(emission and pools by the rules, rewards floor shares of their pool by weight, the epoch row's
sums); 1 % of nodes are unregistered, ~10 % miss slots, verdicts vary, 1 % have a slash whose
evidence is their registration event.

Measured: the real server (`epochal serve`, uvicorn with uvloop and httptools, one process) in a subprocess on 127.0.0.1,
after its index is built (the time it took is reported). The load generator (asyncio + aiohttp,
keep-alive connections) sends requests open-loop at a fixed rate (each at its scheduled time,
whether or not earlier ones have answered) and measures each latency from its scheduled send
time, so a stalled server cannot hide behind a slowed client (aiohttp's client: lighter than
httpx on the CPU both share). Three phases of D seconds at R
requests/s: the baseline `GET /health` (the HTTP stack and the client with almost no work),
then `GET /nodes/{id}` for random known ids, then `GET /nodes?...` cycling through filtered,
sorted queries with a page of 50 (some with a cursor of the next page). Each reports p50, p99
and max, and its p99 over the baseline's.

Usage: python bench/bench_api.py [--nodes 100000] [--epochs 48] [--rate 100] [--seconds 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Row, log  # noqa: E402
from store.published import list_epochs  # noqa: E402

REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east", "sa-east", "af-south")
LIST_QUERIES = (
    "class=enterprise&min_reputation=500&hw_verdict=verified&sort=-reputation&limit=50",
    "gpu=H100&eligible=true&sort=-reward_base_units&limit=50",
    "region=eu-west&sort=streak_slots&limit=50",
    "class=community&eligible=false&sort=-rep_availability&limit=50",
    "min_reputation=800&region=us-east&sort=node_id&limit=50",
    "hw_verdict=mismatch&sort=-up_slots&limit=50",
    "gpu=RTX-4090&min_reputation=300&sort=-weight&limit=50",
    "eligible=true&sort=-reputation&limit=50",
)


# ----------------------------------------------------------------------------------------
# the published folder
# ----------------------------------------------------------------------------------------

def build_folder(root: Path, nodes: int, epochs: int) -> dict:
    """A published folder of `nodes` × `epochs`, written by the real writer from a store built
    in memory; returns a few node ids for the load."""
    import duckdb

    from store.db import SCHEMA
    from payouts.emission import compute_emission, compute_pools
    from scoring.hardware import MODEL_TABLE
    from scoring.ruleset import RULESET_V1
    from store.published import publish_pending

    cfg = RULESET_V1
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute(SCHEMA)
    models = ", ".join(f"({i}, '{m.model_key}', '{m.aliases[0]}', '{m.gpu_class}', {m.multiplier_milli})"
                       for i, m in enumerate(MODEL_TABLE))
    regions = ", ".join(f"({i}, '{r}')" for i, r in enumerate(REGIONS))
    g, hour = cfg.genesis_us, cfg.reward_epoch_us
    con.execute(f"CREATE TEMP TABLE models AS SELECT * FROM (VALUES {models}) v(m, model_key, claimed, class, mult)")
    con.execute(f"CREATE TEMP TABLE regions AS SELECT * FROM (VALUES {regions}) v(r, region)")
    con.execute(f"""
        CREATE TEMP TABLE fleet AS
        SELECT i, 'node-' || substr(md5(i::VARCHAR), 1, 12) AS node_id,
               i % 100 <> 7 AS registered,
               'W' || substr(md5('w' || (i // 3)::VARCHAR), 1, 31) AS wallet,
               (hash(i, 1) % {len(MODEL_TABLE)})::INTEGER AS m,
               (hash(i, 2) % {len(REGIONS)})::INTEGER AS r,
               1 + (hash(i, 3) % 8)::INTEGER AS gpu_count,
               {g} + (i % 3000) * 1000000 AS registered_at_us
        FROM range({nodes}) t(i)""")
    # registrations in the archive (the registry's region and operator come from them)
    con.execute(f"""
        INSERT INTO archive_events
        SELECT i, 'reg-' || node_id, 'node.registered', node_id, registered_at_us, 0, false,
               json_object('gpu_count', gpu_count, 'gpu_model', claimed, 'ip', '10.0.0.1',
                           'operator_id', 'op-' || (i % 997)::VARCHAR, 'region', region,
                           'stake_base_units', 1000000000, 'wallet', wallet)::VARCHAR,
               md5(node_id)
        FROM fleet JOIN models USING (m) JOIN regions USING (r) WHERE registered ORDER BY i""")
    through = nodes - 1
    for e in range(epochs):
        emission = compute_emission(e, cfg)
        ent, com = compute_pools(emission, cfg)
        con.execute(f"""
            INSERT INTO node_epoch_scores
            WITH base AS (
                SELECT f.*, mo.model_key, mo.claimed, mo.class, mo.mult,
                       hash(i, {e}, 11) % 1000 AS h,
                       CASE WHEN hash(i, {e}, 12) % 10 = 0 THEN (hash(i, {e}, 13) % 61)::INTEGER ELSE 60 END AS up,
                       CASE WHEN hash(i, 14) % 100 < 86 THEN 'verified' WHEN hash(i, 14) % 100 < 91 THEN 'mismatch'
                            WHEN hash(i, 14) % 100 < 94 THEN 'stale' WHEN hash(i, 14) % 100 < 97 THEN 'none'
                            WHEN hash(i, 14) % 100 < 99 THEN 'unknown_model' ELSE 'impossible' END AS verdict,
                       (hash(i, 15) % 20)::BIGINT AS s, (hash(i, 16) % 3)::BIGINT AS fl,
                       CASE WHEN i % 100 = 3 THEN 1 ELSE 0 END AS slashes
                FROM fleet f JOIN models mo USING (m)
            ), comp AS (
                SELECT *, 0.9 + (h % 100) / 1000.0 AS a, (s + 1)::DOUBLE / (s + fl + 2) AS j,
                       CASE WHEN verdict = 'verified' THEN 0.8 + (h % 200) / 1000.0 ELSE 0.0 END AS hw,
                       least(1.0, ({e} * 3600 + 3600 - (registered_at_us - {g}) / 1e6) / 3600.0 / 720.0) AS t,
                       power(0.5, slashes) AS p,
                       60 * {e} + up AS streak
                FROM base
            ), rep AS (
                SELECT *, CASE WHEN registered THEN round(1000 * (0.40 * a + 0.30 * j + 0.20 * hw + 0.10 * t) * p)::INTEGER END AS rr
                FROM comp
            ), el AS (
                SELECT *, CASE WHEN NOT registered THEN 'not_registered' WHEN verdict <> 'verified' THEN 'hardware_unverified'
                               WHEN streak < 300 THEN 'streak_short' WHEN up < 1 THEN 'no_uptime' END AS reason
                FROM rep
            )
            SELECT {e}, node_id, up, up / 60.0, streak, verdict, rr,
                   CASE WHEN registered THEN a END, CASE WHEN registered THEN j END, CASE WHEN registered THEN hw END,
                   CASE WHEN registered THEN t END, CASE WHEN registered THEN p END,
                   reason IS NULL, reason,
                   CASE WHEN reason IS NULL THEN up::BIGINT * mult * gpu_count * rr ELSE 0 END,
                   '{cfg.ruleset_version}',
                   CASE WHEN up = 60 THEN 1152921504606846975::UBIGINT ELSE ((1::UBIGINT << up) - 1) END,
                   up > 0, a * ({e} + 1), {e} + 1.0,
                   CASE WHEN registered THEN registered_at_us END,
                   CASE WHEN registered THEN claimed END, CASE WHEN registered THEN model_key END,
                   CASE WHEN registered THEN gpu_count END, CASE WHEN registered THEN class END,
                   CASE WHEN registered THEN mult END, CASE WHEN registered THEN wallet END,
                   CASE WHEN verdict = 'verified' THEN hw END,
                   CASE WHEN verdict <> 'none' THEN 'bm-' || node_id || '-' || ({e} // 12)::VARCHAR END,
                   s, fl, slashes, false
            FROM el ORDER BY node_id""")
        # rewards: each pool's floor share by weight, the rest unallocated (§7 without the remainders)
        con.execute(f"""
            INSERT INTO epoch_rewards
            WITH w AS (SELECT node_id, pool, wallet, weight::HUGEINT AS w,
                              sum(weight::HUGEINT) OVER (PARTITION BY pool) AS total
                       FROM node_epoch_scores WHERE reward_epoch = {e} AND eligible AND weight > 0)
            SELECT {e}, node_id, pool,
                   (CASE pool WHEN 'enterprise' THEN {ent}::HUGEINT ELSE {com}::HUGEINT END * w // total)::BIGINT,
                   wallet, '{cfg.ruleset_version}'
            FROM w WHERE (CASE pool WHEN 'enterprise' THEN {ent}::HUGEINT ELSE {com}::HUGEINT END * w // total) > 0
            ORDER BY node_id""")
        alloc = dict(con.execute(f"SELECT pool, sum(amount_base_units)::BIGINT FROM epoch_rewards"
                                 f" WHERE reward_epoch = {e} GROUP BY pool").fetchall())
        a_e, a_c = alloc.get("enterprise", 0), alloc.get("community", 0)
        eligible, scored = con.execute(f"SELECT count(*) FILTER (WHERE eligible), count(*) FROM node_epoch_scores"
                                       f" WHERE reward_epoch = {e}").fetchall()[0]
        con.execute("INSERT INTO reward_epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e, emission, ent, com, a_e + a_c, emission - a_e - a_c, eligible,
                     hashlib.sha256(f"bench-{e}".encode()).hexdigest(), cfg.ruleset_version, ent - a_e, com - a_c,
                     scored, cfg.params_sha256, "bench", through, nodes if e == 0 else 0, "0" * 32,
                     g + (e + 1) * hour, 0])
    con.execute("""
        INSERT INTO slash_decisions (decision_id, node_id, rule, amount_base_units, decided_at, status, evidence,
                                     subject, decided_at_us, decided_in_epoch, finality_epoch, detail, ruleset_version)
        SELECT md5('slash-' || node_id) || md5(node_id), node_id, 'hardware_fraud', 1000000000,
               make_timestamp(registered_at_us), 'proposed', ['reg-' || node_id], 'bm-' || node_id,
               registered_at_us, 0, 24, 'bench: verdict impossible', '2026.1'
        FROM fleet WHERE i % 100 = 3 AND registered""")
    ids = [r[0] for r in con.execute("SELECT node_id FROM fleet ORDER BY hash(i, 99) LIMIT 5000").fetchall()]
    t0 = time.perf_counter()
    published = publish_pending(con, root)
    con.close()
    return {"ids": ids, "publish_s": time.perf_counter() - t0, "epochs": len(published)}


# ----------------------------------------------------------------------------------------
# the server and the load
# ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int, log_path: Path, window: int) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-c", "from epochal.cli import main; main()", "serve", "--published", str(root),
           "--db", str(root.parent / "bench.duckdb"), "--port", str(port), "--window", str(window)]
    return subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT), start_new_session=True)


def wait_ready(base: str, proc: subprocess.Popen, epochs: int, timeout_s: float) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            h = httpx.get(base + "/health", timeout=5).json()
            if h.get("published_epochs") == epochs:
                return h
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not index {epochs} epochs within {timeout_s:.0f} s")


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


async def _load(base: str, paths: list[str], rate: float, seconds: float) -> dict:
    """Open loop: request k is sent at t0 + k/rate; its latency counts from that moment."""
    import aiohttp  # the lightest asyncio HTTP client at hand (a dependency of faust already)

    n = int(rate * seconds)
    lat: list[float] = []
    errors: dict[str, int] = {}
    conn = aiohttp.TCPConnector(limit=64, force_close=False)
    async with aiohttp.ClientSession(base, connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as client:
        t0 = time.perf_counter() + 0.05

        async def one(k: int) -> None:
            at = t0 + k / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with client.get(paths[k % len(paths)]) as r:
                    body = await r.read()
                    if r.status != 200:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                    elif not body.startswith(b"{"):
                        errors["not JSON"] = errors.get("not JSON", 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            lat.append(time.perf_counter() - at)

        await asyncio.gather(*(one(k) for k in range(n)))
    return {"requests": n, "p50_ms": percentile(lat, 0.50) * 1e3, "p99_ms": percentile(lat, 0.99) * 1e3,
            "max_ms": max(lat) * 1e3, "errors": errors}


def load(base: str, paths: list[str], rate: float, seconds: float) -> dict:
    return asyncio.run(_load(base, paths, rate, seconds))


def measure(nodes: int, epochs: int, rate: float, seconds: float, workdir: Path, window: int = 48,
            reuse: bool = False) -> dict:
    import httpx
    import psutil

    root = workdir / "bench.duckdb.published"
    ids_file = workdir / "bench-ids.json"
    t0 = time.perf_counter()
    if reuse and ids_file.exists() and len(list_epochs(root)) == epochs:
        built = json.loads(ids_file.read_text())
    else:
        if root.exists():
            shutil.rmtree(root)
        built = build_folder(root, nodes, epochs)
        ids_file.write_text(json.dumps(built))
    build_s = time.perf_counter() - t0
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
    log(f"api: published {nodes:,} nodes × {epochs} epochs in {build_s:.1f} s ({size_mb:,.0f} MB)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(root, port, workdir / "serve.log", window)
    try:
        t1 = time.perf_counter()
        health = wait_ready(base, proc, epochs, timeout_s=900)
        ready_s = time.perf_counter() - t1
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 1e6
        log(f"api: server ready in {ready_s:.1f} s (index build {health.get('index_build_s')} s), RSS {rss_mb:,.0f} MB")
        rnd = random.Random(17)
        ids = built["ids"]
        node_paths = [f"/nodes/{rnd.choice(ids)}" for _ in range(4000)]
        list_paths = []
        for q in LIST_QUERIES:  # each query's first page, and its second through the cursor
            list_paths.append(f"/nodes?{q}")
            nxt = httpx.get(f"{base}/nodes?{q}", timeout=30).json().get("next_cursor")
            if nxt:
                list_paths.append(f"/nodes?{q}&cursor={nxt}")
        load(base, ["/health"] * 10 + node_paths[:50] + list_paths, rate, 3.0)  # warm-up, not counted
        out = {"nodes": nodes, "epochs": epochs, "rate": rate, "seconds": seconds, "build_s": build_s,
               "folder_mb": size_mb, "ready_s": ready_s, "index_build_s": health.get("index_build_s"),
               "server_rss_mb": rss_mb}
        server = psutil.Process(proc.pid)
        for name, paths in (("health", ["/health"]), ("node", node_paths), ("list", list_paths)):
            c0 = server.cpu_times()
            r = load(base, paths, rate, seconds)
            c1 = server.cpu_times()
            # the server's own CPU per request: what it costs, whatever its neighbours on the machine do
            r["server_cpu_ms_per_request"] = ((c1.user + c1.system) - (c0.user + c0.system)) * 1e3 / r["requests"]
            log(f"api: {name:6s} {r['requests']} requests at {rate:.0f}/s: p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms, server CPU {r['server_cpu_ms_per_request']:.2f} ms"
                f" a request, errors {r['errors'] or 'none'}")
            out[name] = r
        out["server_rss_mb_after"] = psutil.Process(proc.pid).memory_info().rss / 1e6
        return out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def rows_of(r: dict, quick: bool) -> list[Row]:
    base = r["health"]
    tag = f"{r['nodes']:,} nodes × {r['epochs']} epochs, {r['rate']:.0f} req/s × {r['seconds']:.0f} s"
    out = []
    for name, label, limit in (("node", "GET /nodes/{id} p99", 50.0), ("list", "GET /nodes?… (page of 50) p99", 150.0)):
        x = r[name]
        out.append(Row(benchmark="api", metric=f"{label}, {tag}", value=x["p99_ms"] / 1e3, unit="s",
                       baseline=base["p99_ms"] / 1e3, baseline_label="GET /health p99, same run",
                       ratio=x["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
                       budget=f"p99 < {limit:.0f} ms", limit=limit / 1e3, compare="value",
                       note=f"p50 {x['p50_ms']:.1f} ms, max {x['max_ms']:.1f} ms, server CPU "
                            f"{x['server_cpu_ms_per_request']:.2f} ms a request, errors {x['errors'] or 0}",
                       extra=r).check(quick))
    return out


def run(quick: bool, workdir: Path) -> list[Row]:
    """The suite's entry point (bench/run): 100,000 × 48 at 100 req/s × 30 s; quick 5,000 × 6 × 4 s
    (budgets reported, not enforced)."""
    nodes, epochs, seconds = (5_000, 6, 4.0) if quick else (100_000, 48, 30.0)
    return rows_of(measure(nodes, epochs, 100.0, seconds, Path(workdir)), quick)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=48)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--window", type=int, default=48)
    ap.add_argument("--keep", type=Path, default=None, help="Work in this folder and keep it.")
    ap.add_argument("--reuse", action="store_true", help="With --keep: reuse the folder built by an earlier run.")
    args = ap.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="epochal-bench-api-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        r = measure(args.nodes, args.epochs, args.rate, args.seconds, workdir, args.window, reuse=args.reuse)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    base = r["health"]["p99_ms"]
    print(f"API on {r['nodes']:,} nodes × {r['epochs']} epochs, {r['rate']:.0f} requests/s for {r['seconds']:.0f} s each"
          f" (index built in {r['index_build_s']} s, server RSS {r['server_rss_mb_after']:,.0f} MB):")
    for name, label, limit in (("health", "GET /health (baseline)", None), ("node", "GET /nodes/{id}", 50.0),
                               ("list", "GET /nodes?... page of 50", 150.0)):
        x = r[name]
        verdict = "" if limit is None else ("  PASS" if x["p99_ms"] < limit else "  FAIL") + f" (p99 < {limit:.0f} ms)"
        print(f"  {label:28s} p50 {x['p50_ms']:7.1f} ms  p99 {x['p99_ms']:7.1f} ms  max {x['max_ms']:7.1f} ms"
              f"  p99/baseline {x['p99_ms'] / base:5.2f}×  server CPU {x['server_cpu_ms_per_request']:.2f} ms/request"
              f"  errors {x['errors'] or 0}{verdict}")
    ok = r["node"]["p99_ms"] < 50 and r["list"]["p99_ms"] < 150
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
