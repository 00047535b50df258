"""A large store for the investigation benchmark, built directly (no JSON lines to parse).

Replaying a simulated 100,000 nodes × 24 h (126 M events, 19 GB of JSON lines) takes the
engine tens of minutes on this shared machine before anything is measured, so the benchmark's
archive is written straight into the store's tables, as `bench_close.py` does, and closed by
the engine's own `close_ready_epochs`. What the investigation reads is shaped as the ingest
writes it (payloads with the contract's keys, one ping row per ping), with the population it
must sift:

- honest nodes (each its own /24 and wallet; uptime steady with blips, 10 % flaky), registered
  over the first 40 minutes; one regional outage of 20 minutes (60 % of a region);
- declared fleets (5 %: one operator, one /24, 20 nodes), honest shared /24s (3 %, 30 nodes);
- farms (2 %, 25 nodes each), four designs in turn: one wallet and one IP; benchmark clones in
  lockstep; a shared fingerprint pool; same-second pings with a wash buyer;
- two benchmarks per node, pings from six checkers (round trips per region, checker and node),
  a job per node every ~20 hours.

Usage: python bench/investigate_store.py DB [--nodes 100000] [--hours 24] (or `build()`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import fleet  # noqa: E402

REGIONS = ("us-east", "us-west", "eu-central", "eu-west", "ap-southeast", "ap-northeast", "sa-east")
CHECKERS = ("checker-use1", "checker-usw2", "checker-euc1", "checker-euw1", "checker-apse1", "checker-apne1")
RTT = np.array([[8, 65, 90, 80, 220, 160], [65, 8, 150, 140, 170, 110], [90, 150, 8, 20, 160, 230],
                [80, 140, 20, 8, 170, 220], [220, 170, 160, 170, 8, 70], [160, 110, 230, 220, 70, 8],
                [120, 180, 200, 190, 320, 260]], dtype=np.float64)


def layout(nodes: int) -> tuple[int, int, int]:
    """Nodes in declared fleets, in shared honest /24s and in farms, laid out in that order
    over the first node indices."""
    return int(0.05 * nodes) // 20 * 20, int(0.03 * nodes) // 30 * 30, int(0.02 * nodes) // 25 * 25


def truth(nodes: int) -> dict[str, set[str]]:
    """The store's planted roles by node id: `farm` (the suspects), `fleet`, `subnet`."""
    n_fleet, n_sub, n_farm = layout(nodes)
    ids = lambda lo, hi: {fleet.node_id(i) for i in range(lo, hi)}  # noqa: E731
    return {"fleet": ids(0, n_fleet), "subnet": ids(n_fleet, n_fleet + n_sub),
            "farm": ids(n_fleet + n_sub, n_fleet + n_sub + n_farm)}


def build(db: str, nodes: int = 100_000, hours: int = 24, seed: int = 1) -> dict:
    import base58
    import polars as pl

    import store.db as store
    from payouts.close import close_ready_epochs
    from scoring.ruleset import RULESET_V1 as cfg

    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    N, H = int(nodes), int(hours)
    g, ep, sl = cfg.genesis_us, cfg.reward_epoch_us, cfg.slot_us
    L = H * 60
    idx = np.arange(N)
    region = rng.choice(len(REGIONS), N, p=[0.24, 0.16, 0.18, 0.14, 0.12, 0.10, 0.06])
    m = idx % len(fleet.MODELS)
    count = np.array([fleet.model_of(int(i))[2] for i in range(min(N, 7 * 6))])[idx % min(N, 7 * 6)]
    wallets = np.array([base58.b58encode(rng.bytes(32)).decode() for _ in range(N)], dtype=object)
    ipa, ipb, ipc = 11 + (idx // 65536) % 200, (idx // 256) % 256, idx % 256
    host = rng.integers(2, 255, N)
    operator = np.full(N, None, dtype=object)
    reg = g + np.minimum(rng.exponential(360e6, N), 2400e6).astype(np.int64) + rng.integers(0, 10**6, N)
    q = rng.uniform(0.87, 1.0, (N, 2))
    fp_pool = np.full(N, -1)
    sync = np.full(N, -1)
    clone = np.zeros(N, bool)
    role = np.zeros(N, np.int8)  # 0 honest, 1 fleet, 2 subnet, 3 farm
    # groups laid out over consecutive indices: fleets, shared subnets, farms
    n_fleet, n_sub, n_farm = layout(N)
    lo = 0
    for k in range(n_fleet // 20):
        s = slice(lo + 20 * k, lo + 20 * (k + 1))
        operator[s] = f"op-fleet-{k}"
        ipa[s], ipb[s], ipc[s], region[s] = ipa[s.start], ipb[s.start], ipc[s.start], region[s.start]
        host[s] = 10 + np.arange(20)
        role[s] = 1
    lo += n_fleet
    for k in range(n_sub // 30):
        s = slice(lo + 30 * k, lo + 30 * (k + 1))
        ipa[s], ipb[s], ipc[s], region[s] = ipa[s.start], ipb[s.start], ipc[s.start], region[s.start]
        host[s] = rng.permutation(np.arange(2, 255))[:30]
        role[s] = 2
    lo += n_sub
    farms = []
    for k in range(n_farm // 25):
        s = slice(lo + 25 * k, lo + 25 * (k + 1))
        design = k % 4
        role[s] = 3
        m[s], count[s] = m[s.start], count[s.start]
        if design == 0:  # one wallet, one IP, a burst
            wallets[s] = wallets[s.start]
            ipa[s], ipb[s], ipc[s], host[s] = ipa[s.start], ipb[s.start], ipc[s.start], 77
            reg[s] = reg[s.start] + np.cumsum(rng.integers(800_000, 6_000_000, 25))
        elif design == 1:  # clones in lockstep
            q[s] = q[s.start]
            clone[s] = True
        elif design == 2:  # a pool of fingerprints
            fp_pool[s] = k
        else:  # same-second pings (one responder)
            sync[s] = k
        farms.append((design, list(range(s.start, s.stop))))
    lo += n_farm
    node_id = np.array([fleet.node_id(int(i)) for i in idx], dtype=object)
    claim = np.array([mm.claim for mm in fleet.MODELS], dtype=object)[m]
    ip = [f"{a}.{b}.{c}.{h}" for a, b, c, h in zip(ipa.tolist(), ipb.tolist(), ipc.tolist(), host.tolist())]

    con = store.connect(db, memory_limit="6GB")
    seq = 0
    # registrations
    regs = pl.DataFrame({
        "node_id": node_id.tolist(), "reg": reg, "wallet": wallets.tolist(), "claim": claim.tolist(),
        "count": count, "region": [REGIONS[r] for r in region.tolist()], "ip": ip,
        "op": operator.tolist(),
    })
    con.register("regs", regs.to_arrow())
    con.execute(f"""
        INSERT INTO archive_events
        SELECT {seq} + row_number() OVER (ORDER BY reg, node_id) - 1, 'reg-' || node_id, 'node.registered', node_id,
               reg, (reg - {g}) // {ep}, false,
               json_object('event_id', 'reg-' || node_id, 'event_type', 'node.registered', 'gpu_count', count,
                           'gpu_model', claim, 'ip', ip, 'node_id', node_id, 'occurred_at', reg // 1000,
                           'operator_id', op, 'region', region, 'schema_version', 1,
                           'stake_base_units', 5000000000, 'wallet', wallet)::VARCHAR, NULL
        FROM regs""")
    seq += N
    # benchmarks: two per node
    spec = np.array([mm.spec for mm in fleet.MODELS])[m]
    rows = []
    for k, dt in enumerate((120_000_000, 12 * ep)):
        noise = np.where(clone[:, None], rng.uniform(0.9995, 1.0005, (N, 2)), rng.uniform(0.985, 1.015, (N, 2)))
        fq = np.clip(q * noise, 0.6, 1.05)
        at = reg + dt + rng.integers(0, 60_000_000, N)
        keep = at < g + H * ep
        rows.append(pl.DataFrame({
            "node_id": node_id[keep].tolist(), "t_at": at[keep], "k": np.full(int(keep.sum()), k),
            "claim": claim[keep].tolist(), "count": count[keep],
            "fp32": np.round(spec[keep, 0] * fq[keep, 0], 3), "bw": np.round(spec[keep, 1] * fq[keep, 1], 1),
            "vram": np.round(spec[keep, 2] * 0.96, 2),
            "fps": [[(f"pool-{fp_pool[i]}-{j}" if fp_pool[i] >= 0 else f"fp-{node_id[i]}-{j}") for j in range(count[i])]
                    for i in np.flatnonzero(keep).tolist()],
            "ip": [ip[i] for i in np.flatnonzero(keep).tolist()],
        }))
    bm = pl.concat(rows)
    con.register("bm", bm.to_arrow())
    con.execute(f"""
        INSERT INTO archive_events
        SELECT {seq} + row_number() OVER (ORDER BY t_at, node_id, k) - 1, 'bm-' || node_id || '-' || k, 'benchmark',
               node_id, t_at, (t_at - {g}) // {ep}, false,
               json_object('download_mbps', 900.0, 'event_id', 'bm-' || node_id || '-' || k, 'event_type', 'benchmark',
                           'fp32_tflops', fp32, 'gpu_count', count, 'gpu_fingerprints', fps, 'gpu_model', claim,
                           'ip', ip, 'mem_bandwidth_gbps', bw, 'node_id', node_id, 'occurred_at', t_at // 1000,
                           'schema_version', 1, 'upload_mbps', 400.0, 'vram_gb', vram)::VARCHAR, NULL
        FROM bm""")
    seq += bm.height
    # jobs: one per node every ~20 h; a wash buyer per same-second farm
    nj = N * H // 20
    jn = rng.integers(0, N, nj)
    buyer = np.array([f"buyer-{b:05d}" for b in rng.zipf(1.3, nj) % 5000], dtype=object)
    for design, members in farms:
        if design == 3:
            extra = rng.choice(members, 75)
            jn = np.concatenate([jn, extra])
            buyer = np.concatenate([buyer, np.full(75, f"wash-{members[0]}", dtype=object)])
    st = g + rng.integers(0, (H - 1) * ep, jn.size)
    dur = rng.integers(300, 3600, jn.size) * 1_000_000
    jobs = pl.DataFrame({"node_id": node_id[jn].tolist(), "job": [f"job-{k:08d}" for k in range(jn.size)],
                         "buyer": buyer.tolist(), "st": st, "en": st + dur, "t_at": st + dur + 5_000_000})
    con.register("jobs", jobs.to_arrow())
    con.execute(f"""
        INSERT INTO archive_events
        SELECT {seq} + row_number() OVER (ORDER BY t_at, job) - 1, 'jc-' || job, 'job.completed', node_id, t_at,
               (t_at - {g}) // {ep}, false,
               json_object('buyer_id', buyer, 'committed_until', strftime(make_timestamp(en), '%Y-%m-%dT%H:%M:%S.%fZ'),
                           'ended_at', strftime(make_timestamp(en), '%Y-%m-%dT%H:%M:%S.%fZ'),
                           'event_id', 'jc-' || job, 'event_type', 'job.completed', 'fee_base_units', 1000,
                           'gpu_hours', 0.5, 'job_id', job, 'node_id', node_id, 'occurred_at', t_at // 1000,
                           'schema_version', 1, 'started_at', strftime(make_timestamp(st), '%Y-%m-%dT%H:%M:%S.%fZ'),
                           'status', 'succeeded')::VARCHAR, NULL
        FROM jobs""")
    seq += jobs.height
    t_events = time.perf_counter() - t_start

    # presence: steady with blips, 10 % flaky; farms in lockstep share a host; a regional outage
    up = np.empty((N, L), bool)
    for e in range(H):  # an epoch at a time: float32 draws, to keep memory low
        up[:, e * 60:(e + 1) * 60] = rng.random((N, 60), dtype=np.float32) > 0.01
    flaky = rng.random(N) < 0.10
    state = np.ones(int(flaky.sum()), bool)
    fl_rows = np.empty((int(flaky.sum()), L), bool)
    for s in range(L):  # a two-state chain per flaky node, vectorised over nodes
        flip = rng.random(state.size) < np.where(state, 0.05, 0.3)
        state = state ^ flip
        fl_rows[:, s] = state
    up[flaky] &= fl_rows
    for design, members in farms:
        if design == 1:
            host = rng.random(L) > 0.05
            up[members] = host & (rng.random((len(members), L)) > 0.01)
    r0 = int(rng.integers(0, len(REGIONS)))
    s0 = int(rng.integers(60, L - 60))
    hit = np.flatnonzero((region == r0) & (rng.random(N) < 0.6))
    up[np.ix_(hit, np.arange(s0, s0 + 20))] = False
    slot_reg = (reg - g) // sl
    up &= np.arange(L)[None, :] >= slot_reg[:, None]
    factor = RTT[region] * rng.lognormal(0, 0.25, (N, len(CHECKERS)))
    for design, members in farms:
        if design == 3:
            factor[members] = factor[members[0]]
    con.register("inv_nodes_df", pl.DataFrame({"i": idx.astype(np.int32), "node_id": node_id.tolist()}).to_arrow())
    con.execute("CREATE TEMP TABLE inv_nodes AS SELECT * FROM inv_nodes_df")
    con.register("inv_checkers_df", pl.DataFrame({"c": np.arange(len(CHECKERS), dtype=np.int8),
                                                  "checker": list(CHECKERS)}).to_arrow())
    con.execute("CREATE TEMP TABLE inv_checkers AS SELECT * FROM inv_checkers_df")
    n_pings = 0
    for e in range(H):
        blk = up[:, e * 60:(e + 1) * 60]
        down = ~blk & (np.arange(60)[None, :] >= (slot_reg - e * 60)[:, None])
        sample = down & (rng.random(down.shape) < 0.25)
        # per node and slot a checker and a moment; a same-second farm takes its first node's
        g_chk = rng.integers(0, len(CHECKERS), (N, 60), dtype=np.int8)
        g_off = rng.integers(0, 60_000_000, (N, 60), dtype=np.int32)
        for design, members in farms:
            if design == 3:
                g_chk[members] = g_chk[members[0]]
                g_off[members] = g_off[members[0]]
        ni, si = np.nonzero(blk | sample)
        reach = blk[ni, si]
        abs_s = e * 60 + si
        c = g_chk[ni, si].astype(np.int64)
        t = g + abs_s.astype(np.int64) * sl + g_off[ni, si].astype(np.int64)
        rtt = np.where(reach, np.round(factor[ni, c] * rng.lognormal(0, 0.12, ni.size), 1), np.nan)
        order = np.argsort(t, kind="stable")
        # numbers only on the Python side; the strings are made by DuckDB from two small tables
        df = pl.DataFrame({
            "node": ni[order].astype(np.int32), "abs": abs_s[order].astype(np.int32),
            "slot": si[order].astype(np.int16), "t": t[order], "c": c[order].astype(np.int8),
            "reach": reach[order], "rtt": rtt[order], "k": np.arange(ni.size, dtype=np.int64),
        })
        con.register("pg", df.to_arrow())
        con.execute(f"""
            INSERT INTO archive_pings
            SELECT {seq} + k, 'p-' || n.node_id || '-' || pg.abs, n.node_id, t, CAST(t // 1000 AS VARCHAR),
                   ck.checker, reach, CASE WHEN reach THEN rtt END, NULL, {e}, slot, false, NULL
            FROM pg JOIN inv_nodes n ON n.i = pg.node JOIN inv_checkers ck ON ck.c = pg.c
            ORDER BY k""")
        con.unregister("pg")
        seq += df.height
        n_pings += df.height
    t_pings = time.perf_counter() - t_start - t_events
    closed = close_ready_epochs(con, cfg, watermark_us=g + H * ep)
    con.close()
    return {"nodes": N, "hours": H, "pings": n_pings, "events_s": round(t_events, 1), "pings_s": round(t_pings, 1),
            "close_s": round(time.perf_counter() - t_start - t_events - t_pings, 1), "closed": len(closed),
            "farms": len(farms), "farm_nodes": 25 * len(farms)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--hours", type=int, default=24)
    a = ap.parse_args(argv)
    print(build(a.db, a.nodes, a.hours))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
