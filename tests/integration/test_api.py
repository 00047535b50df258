"""The buyer-facing API (FastAPI's TestClient) over a real published folder: a simulated network
replayed and published by the engine. Every figure the API serves is checked against the
published files read back with DuckDB through the reader's views.

Also: bad parameters are 422, unknown ids 404 with a sentence, pages are capped, no endpoint
writes (the folder's bytes are unchanged and other methods are refused), SQL injection attempts
in every parameter are harmless, and the settlement status comes from the treasury's file (and
survives that file being held by another process)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from fastapi.testclient import TestClient

from apikit import published_con, published_folder, rows

from epochal.api.app import ApiConfig, create_app
from epochal.api.index import SORT_KEYS
from payouts.emission import compute_emission, compute_pools
from store.published import list_epochs, read_manifest

INJECTIONS = ["' OR '1'='1", "x'; DROP TABLE node_epoch_scores; --", "\" OR 1=1 --", "1; SELECT * FROM nodes",
              "node') UNION SELECT * FROM epoch_rewards --", "%27%20OR%201%3D1", "' || (SELECT 1) || '",
              "$w", "?", "NULL", "\\x00"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return published_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def client(data, tmp_path_factory):
    treasury = tmp_path_factory.mktemp("treasury") / "store.duckdb.treasury.duckdb"
    app = create_app(ApiConfig(published=data["root"], treasury=treasury))
    with TestClient(app) as c:
        c.treasury = treasury
        yield c


@pytest.fixture(scope="module")
def expected(data):
    """Each node's latest score row, its reward there and its registry, from the files."""
    con = published_con(data["root"])
    latest = rows(con, """
        WITH s AS (SELECT * FROM node_epoch_scores
                   QUALIFY row_number() OVER (PARTITION BY node_id ORDER BY reward_epoch DESC) = 1),
             r AS (SELECT reward_epoch, node_id, sum(amount_base_units)::BIGINT AS paid FROM epoch_rewards GROUP BY ALL)
        SELECT s.*, coalesce(r.paid, 0) AS reward_base_units, n.region
        FROM s LEFT JOIN r USING (reward_epoch, node_id) LEFT JOIN nodes n USING (node_id)
        ORDER BY node_id""")
    return {"con": con, "latest": {r["node_id"]: r for r in latest}}


def folder_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def all_pages(client, params: dict) -> list[dict]:
    out, cursor = [], None
    for _ in range(1000):
        r = client.get("/nodes", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["nodes"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


# ----------------------------------------------------------------------------------------

def test_health_lists_every_published_epoch(client, data):
    h = client.get("/health").json()
    eps = list_epochs(data["root"])
    assert len(eps) >= 5
    assert (h["status"], h["published_epochs"], h["first_epoch"], h["latest_epoch"]) == ("ok", len(eps), eps[0], eps[-1])


def test_node_rows_carry_the_published_reputation_and_every_component(client, expected):
    got = {n["node_id"]: n for n in all_pages(client, {"limit": 200})}
    assert set(got) == set(expected["latest"])
    for node, want in expected["latest"].items():
        g = got[node]
        assert g["reward_epoch"] == want["reward_epoch"] and g["reputation"] == want["reputation"]
        for c in ("rep_availability", "rep_jobs", "rep_hardware", "rep_tenure", "rep_penalty"):
            assert g["components"][c] == want[c], (node, c)
        assert (g["up_slots"], g["streak_slots"], g["hw_verdict"], g["eligible"], g["weight"]) == (
            want["up_slots"], want["streak_slots"], want["hw_verdict"], want["eligible"], want["weight"])
        assert g["reward_base_units"] == want["reward_base_units"]
        assert (g["gpu_model_key"], g["gpu_class"], g["region"]) == (want["gpu_model_key"], want["pool"], want["region"])


@pytest.mark.parametrize("params,pred", [
    ({"gpu": "H100"}, lambda r: r["gpu_model_key"] == "H100"),
    ({"class": "community"}, lambda r: r["pool"] == "community"),
    ({"class": "enterprise"}, lambda r: r["pool"] == "enterprise"),
    ({"min_reputation": 600}, lambda r: r["reputation"] is not None and r["reputation"] >= 600),
    ({"eligible": "true"}, lambda r: r["eligible"]),
    ({"eligible": "false"}, lambda r: not r["eligible"]),
    ({"hw_verdict": "verified"}, lambda r: r["hw_verdict"] == "verified"),
    ({"hw_verdict": "unknown_model"}, lambda r: r["hw_verdict"] == "unknown_model"),
    ({"class": "enterprise", "min_reputation": 300, "eligible": "true"},
     lambda r: r["pool"] == "enterprise" and (r["reputation"] or -1) >= 300 and r["eligible"]),
])
def test_each_filter_keeps_exactly_the_matching_nodes(client, expected, params, pred):
    want = {n for n, r in expected["latest"].items() if pred(r)}
    got = all_pages(client, {**params, "limit": 5})
    assert [n["node_id"] for n in got if n["node_id"] in want] == [n["node_id"] for n in got]
    assert {n["node_id"] for n in got} == want
    assert client.get("/nodes", params=params).json()["matching"] == len(want)


def test_region_filter(client, expected):
    region = next(r["region"] for r in expected["latest"].values() if r["region"])
    got = {n["node_id"] for n in all_pages(client, {"region": region, "limit": 3})}
    assert got == {n for n, r in expected["latest"].items() if r["region"] == region}


@pytest.mark.parametrize("sort", [k for key in SORT_KEYS for k in (key, "-" + key)])
def test_cursor_pages_visit_every_node_once_in_sort_order(client, expected, sort):
    key, desc = sort.lstrip("-"), sort.startswith("-")

    def k(r):
        v = r["node_id"] if key == "node_id" else r[key]
        return -1.0 if v is None else v

    nodes = list(expected["latest"].values())
    if key == "node_id":
        want = sorted((r["node_id"] for r in nodes), reverse=desc)
    else:  # by the key, ties by node_id ascending either way
        want = [r["node_id"] for r in sorted(sorted(nodes, key=lambda r: r["node_id"]), key=k, reverse=desc)]
    got = [n["node_id"] for n in all_pages(client, {"sort": sort, "limit": 7})]
    assert got == want


def test_page_size_is_capped_and_bad_parameters_are_422(client):
    assert client.get("/nodes", params={"limit": 200}).status_code == 200
    for params in ({"limit": 201}, {"limit": 0}, {"limit": -1}, {"sort": "price"}, {"class": "gold"},
                   {"hw_verdict": "great"}, {"min_reputation": 1001}, {"min_reputation": -1}, {"eligible": "maybe"},
                   {"cursor": "not-a-cursor"}, {"cursor": "x" * 600}):
        r = client.get("/nodes", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"]
    other = client.get("/nodes", params={"sort": "node_id", "limit": 2}).json()["next_cursor"]
    r = client.get("/nodes", params={"sort": "-reputation", "cursor": other})
    assert r.status_code == 422 and "cursor" in r.json()["detail"]
    assert client.get("/nodes/x", params={"epochs": 0}).status_code == 422
    assert client.get("/epochs/-1").status_code == 422
    assert client.get("/epochs/abc").status_code == 422
    assert client.get("/epochs", params={"limit": 10_000}).status_code == 422


def test_unknown_ids_are_404_with_a_sentence(client):
    for path, words in (("/nodes/node-does-not-exist", "node 'node-does-not-exist'"),
                        ("/epochs/999999", "epoch 999999 is not published"),
                        ("/wallets/NoSuchWallet111/rewards", "wallet 'NoSuchWallet111'")):
        r = client.get(path)
        assert r.status_code == 404
        assert words in r.json()["detail"]


def test_node_detail_explains_the_score_with_the_published_rows(client, expected):
    con = expected["con"]
    for node, want in list(expected["latest"].items())[:12]:
        d = client.get(f"/nodes/{node}", params={"epochs": 5}).json()
        c = d["current"]
        assert c["reward_epoch"] == want["reward_epoch"] and c["ruleset_version"] == want["ruleset_version"]
        assert c["reputation"] == want["reputation"]
        assert c["components"] == {k: want[k] for k in ("rep_availability", "rep_jobs", "rep_hardware",
                                                         "rep_tenure", "rep_penalty")}
        assert c["weights"] == {"rep_availability": 0.4, "rep_jobs": 0.3, "rep_hardware": 0.2, "rep_tenure": 0.1}
        hist = rows(con, """
            SELECT s.reward_epoch, s.up_slots, s.streak_slots, s.reputation, s.slot_bitmap, s.eligible,
                   s.ineligible_reason, s.weight, coalesce(sum(r.amount_base_units), 0)::BIGINT AS paid
            FROM node_epoch_scores s LEFT JOIN epoch_rewards r USING (reward_epoch, node_id)
            WHERE s.node_id = ? GROUP BY ALL ORDER BY s.reward_epoch DESC LIMIT 5""", [node])[::-1]
        assert [e["reward_epoch"] for e in d["epochs"]] == [h["reward_epoch"] for h in hist]
        for e, h in zip(d["epochs"], hist):
            assert (e["up_slots"], e["streak_slots"], e["reputation"], e["reward_base_units"], e["weight"]) == (
                h["up_slots"], h["streak_slots"], h["reputation"], h["paid"], h["weight"])
            assert e["up_slot_map"] == "".join("1" if h["slot_bitmap"] >> i & 1 else "0" for i in range(60))
            assert e["up_slot_map"].count("1") == e["up_slots"]
            if h["paid"] > 0:
                assert e["why_not_paid"] is None
            elif not h["eligible"]:
                assert e["why_not_paid"] == h["ineligible_reason"]
            else:
                assert e["why_not_paid"] in ("zero_weight", "share_rounded_to_zero")


def test_hardware_history_runs_cover_the_node_epochs_without_gaps(client, expected):
    con = expected["con"]
    for node in list(expected["latest"])[:15]:
        runs = client.get(f"/nodes/{node}").json()["hardware"]
        per_epoch = rows(con, "SELECT reward_epoch, hw_verdict, benchmark_event_id FROM node_epoch_scores"
                              " WHERE node_id = ? ORDER BY reward_epoch", [node])
        assert runs[0]["from_epoch"] == per_epoch[0]["reward_epoch"]
        assert runs[-1]["to_epoch"] == per_epoch[-1]["reward_epoch"]
        for a, b in zip(runs, runs[1:]):
            assert b["from_epoch"] == a["to_epoch"] + 1
        for p in per_epoch:
            run = next(r for r in runs if r["from_epoch"] <= p["reward_epoch"] <= r["to_epoch"])
            assert (run["hw_verdict"], run["benchmark_event_id"]) == (p["hw_verdict"], p["benchmark_event_id"])


def test_slashes_come_with_their_evidence_events_in_full(client, expected):
    con = expected["con"]
    decisions = rows(con, "SELECT decision_id, node_id, rule, amount_base_units, status, evidence FROM slash_decisions")
    assert decisions, "the simulation plants slashable behaviour"
    for dec in decisions:
        got = {s["decision_id"]: s for s in client.get(f"/nodes/{dec['node_id']}").json()["slashes"]}
        s = got[dec["decision_id"]]
        assert (s["rule"], s["amount_base_units"], s["status"]) == (dec["rule"], dec["amount_base_units"], dec["status"])
        assert [e["event_id"] for e in s["evidence"]] == list(dec["evidence"])
        for e in s["evidence"]:
            assert e["found"], e
            src = rows(con, "SELECT event_type, payload FROM inputs WHERE event_id = ?", [e["event_id"]])[0]
            assert e["event_type"] == src["event_type"]
            assert e["payload"]["event_id"] == e["event_id"] if isinstance(e["payload"], dict) else True


def test_epochs_show_emission_pools_allocation_and_the_manifest(client, data, expected):
    con = expected["con"]
    listed = client.get("/epochs", params={"limit": 3}).json()
    eps = list_epochs(data["root"])
    assert [e["reward_epoch"] for e in listed["epochs"]] == eps[::-1][:3]
    second = client.get("/epochs", params={"limit": 3, "cursor": listed["next_cursor"]}).json()
    assert [e["reward_epoch"] for e in second["epochs"]] == eps[::-1][3:6]
    for n in eps:
        d = client.get(f"/epochs/{n}").json()
        emission = compute_emission(n)
        ent, com = compute_pools(emission)
        rec = rows(con, "SELECT * FROM reward_epochs WHERE reward_epoch = ?", [n])[0]
        paid = rows(con, "SELECT coalesce(sum(amount_base_units), 0)::BIGINT AS s FROM epoch_rewards WHERE reward_epoch = ?",
                    [n])[0]["s"]
        assert (d["emission_base_units"], d["enterprise_pool"], d["community_pool"]) == (emission, ent, com)
        assert d["allocated_base_units"] == paid == rec["allocated_base_units"]
        assert d["allocated_base_units"] + d["unallocated_base_units"] == emission
        assert d["eligible_nodes"] == rec["eligible_nodes"]
        assert d["manifest"] == read_manifest(data["root"], n)
        assert d["manifest_sha256"] == rec["manifest_sha256"]
        assert d["settlement"]["status"] == "unsettled"


def test_wallet_rewards_page_through_every_payment(client, expected):
    con = expected["con"]
    wallet = rows(con, "SELECT wallet, count(*) AS n FROM epoch_rewards GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")[0]["wallet"]
    want = rows(con, "SELECT reward_epoch, node_id, pool, amount_base_units FROM epoch_rewards WHERE wallet = ?"
                     " ORDER BY reward_epoch DESC, node_id", [wallet])
    got, cursor = [], None
    while True:
        body = client.get(f"/wallets/{wallet}/rewards", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        got += body["rewards"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert got == want
    assert body["total_base_units"] == sum(r["amount_base_units"] for r in want)


def test_settlement_status_is_read_from_the_treasury_file_and_survives_it_being_held(client, data):
    eps = list_epochs(data["root"])
    t = client.treasury
    con = duckdb.connect(str(t))
    con.execute("CREATE TABLE settlements (reward_epoch BIGINT, batch INTEGER, signature VARCHAR, status VARCHAR,"
                " recipients INTEGER, amount_base_units BIGINT, PRIMARY KEY (reward_epoch, batch))")
    con.execute("INSERT INTO settlements VALUES (?, 0, 'sig-a', 'confirmed', 3, 100), (?, 1, 'sig-b', 'confirmed', 2, 50),"
                " (?, 0, 'sig-c', 'sent', 1, 7)", [eps[0], eps[0], eps[1]])
    con.close()
    client.app.state.api.settlements._read_at = -1e9  # no need to wait out the cache's 5 s
    d = client.get(f"/epochs/{eps[0]}").json()["settlement"]
    assert (d["status"], d["settled_base_units"], d["batches"]) == ("settled", 150, 2)
    assert [x["signature"] for x in d["transactions"]] == ["sig-a", "sig-b"]
    assert client.get(f"/epochs/{eps[1]}").json()["settlement"]["status"] == "settling"
    # another process holds the treasury file for writing: the API keeps the last answer, says so
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(t)!r})
        print("held", flush=True)
        sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(t), read_only=True).close()  # the lock is real
        client.app.state.api.settlements._read_at = -1e9
        d = client.get(f"/epochs/{eps[0]}").json()["settlement"]
        assert d["status"] == "settled" and "busy" in d["note"]
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_no_endpoint_writes(client, data):
    before = folder_digest(data["root"])
    node = client.get("/nodes", params={"limit": 1}).json()["nodes"][0]["node_id"]
    for path in ("/health", "/nodes", f"/nodes/{node}", "/epochs", "/epochs/0", "/openapi.json", "/"):
        assert client.get(path).status_code == 200
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)(path).status_code == 405, (method, path)
    assert folder_digest(data["root"]) == before
    ops = client.get("/openapi.json").json()["paths"]
    assert {m for p in ops.values() for m in p} == {"get"}


def test_sql_injection_attempts_in_every_parameter_are_harmless(client, data, expected):
    before = folder_digest(data["root"])
    n_nodes = len(expected["latest"])
    for bad in INJECTIONS:
        for params in ({"gpu": bad}, {"region": bad}, {"cursor": bad}, {"class": bad}, {"hw_verdict": bad},
                       {"sort": bad}, {"min_reputation": bad}, {"eligible": bad}, {"limit": bad}):
            r = client.get("/nodes", params=params)
            assert r.status_code in (200, 422), (params, r.status_code, r.text)
            if r.status_code == 200:
                assert r.json()["nodes"] == [] and r.json()["matching"] == 0, params
        q = quote(bad, safe="")
        for path in (f"/nodes/{q}", f"/wallets/{q}/rewards", f"/epochs/{q}"):
            r = client.get(path, params={"cursor": bad} if "wallets" in path else None)
            assert r.status_code in (404, 422), (path, r.status_code, r.text)
        assert client.get("/epochs", params={"cursor": bad}).status_code == 422
        assert client.get("/nodes/x", params={"epochs": bad}).status_code == 422
    # and nothing changed anywhere: same folder, same answers
    assert folder_digest(data["root"]) == before
    assert client.get("/nodes", params={"limit": 200}).json()["matching"] == n_nodes
    wallet = rows(expected["con"], "SELECT wallet FROM epoch_rewards LIMIT 1")[0]["wallet"]
    assert client.get(f"/wallets/{wallet}/rewards").status_code == 200


def test_a_newly_published_epoch_appears_without_a_restart(data, tmp_path):
    """Epochs copied into a fresh folder one by one, files first and the manifest last as the
    writer does: each shows up on the running app after a refresh of its listing."""
    src, dst = data["root"], tmp_path / "pub"
    eps = list_epochs(src)
    dst.mkdir()

    def publish(n):
        d = dst / f"reward_epoch={n}"
        d.mkdir()
        for f in sorted((src / f"reward_epoch={n}").iterdir()):
            if f.name != "manifest.json":
                shutil.copy2(f, d / f.name)
        shutil.copy2(src / f"reward_epoch={n}" / "manifest.json", d / ".manifest.json.tmp")
        (d / ".manifest.json.tmp").rename(d / "manifest.json")

    for n in eps[:-2]:
        publish(n)
    app = create_app(ApiConfig(published=dst, refresh_s=0.05))
    with TestClient(app) as c:
        assert c.get("/health").json()["latest_epoch"] == eps[-3]
        node = c.get("/nodes", params={"limit": 1}).json()["nodes"][0]["node_id"]
        for n in eps[-2:]:
            publish(n)
            app.state.api.index.refresh()  # what the refresher thread does within refresh_s
            assert c.get("/health").json()["latest_epoch"] == n
            assert c.get(f"/epochs/{n}").status_code == 200
            assert c.get(f"/nodes/{node}").json()["current"]["reward_epoch"] == n
