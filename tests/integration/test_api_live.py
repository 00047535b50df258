"""With `--bootstrap`, the API follows the live snapshots on `epochal.scores` of a real broker
(Tansu, as the streams tests start it) and shows each node's open epoch, marked provisional.

The snapshots are produced by the stream worker's own code: the closer's node-slots encoding
(`streams.live.encode_updates`), the live Table's merge and snapshot (`LiveCache`) and its output
sink (`streams.outputs.OutputSink`) onto the broker; only the faust agent around them is left
out. A snapshot of an epoch that is already published is not shown (the folder wins)."""

from __future__ import annotations

import polars as pl
import pytest
from fastapi.testclient import TestClient

from apikit import published_folder, wait_until
from conftest_streams import kafka_broker  # noqa: F401 (fixture: one real broker for this module)

from epochal.api.app import ApiConfig, create_app
from scoring.ruleset import RULESET_V1
from store.published import list_epochs

pytestmark = [pytest.mark.slow]

SLOTS = pl.Schema({"node_id": pl.String, "reward_epoch": pl.Int64, "bits": pl.Int64, "pings": pl.Int64,
                   "last_ping_us": pl.Int64, "c_streak": pl.Int64, "c_up": pl.Boolean})


def test_open_epochs_from_the_live_snapshots_are_shown_provisional(kafka_broker, tmp_path_factory):  # noqa: F811
    from streams.live import LiveCache, compute_live_snapshot, encode_updates
    from streams.outputs import OutputSink

    data = published_folder(tmp_path_factory)
    last = list_epochs(data["root"])[-1]
    app = create_app(ApiConfig(published=data["root"], bootstrap=kafka_broker))
    with TestClient(app) as client:
        nodes = [n["node_id"] for n in client.get("/nodes", params={"limit": 3, "sort": "node_id"}).json()["nodes"]]
        a, b, c = nodes
        open_e = last + 1
        start = RULESET_V1.genesis_us + open_e * RULESET_V1.reward_epoch_us
        minute = 60_000_000
        # a: up in slots 0-4 of the open epoch; b: slots 0 and 2; c: only a snapshot of the
        # published epoch `last` (must not show); the carried streak is as of the end of `last`
        rows = [(a, open_e, 0b11111, 5, start + 4 * minute + 7, 600, True),
                (b, open_e, 0b101, 2, start + 2 * minute + 7, 120, True),
                (c, last, 0b1, 1, start - 3600 * 1_000_000 + 5, 0, False)]
        msgs = encode_updates(0, 9, False, last - 1, last - 1, pl.DataFrame(rows, schema=SLOTS, orient="row"),
                              [(a, start - 10, "bench-a", "verified")], lambda node: 0)
        sink = OutputSink(kafka_broker)
        cache = LiveCache({}, sink)
        try:
            for _p, value in msgs:
                cache.apply(value)
            want = {(a, open_e): compute_live_snapshot(a, cache.table[a], open_e)}  # what the agent publishes
            assert cache.flush() == 3
            sink.flush(30)
        finally:
            sink.close()

        def shown():
            d = client.get(f"/nodes/{a}").json()
            return d if d["open_epochs"] else None

        d = wait_until(shown, 60, "the live snapshots to reach the API")
        (o,) = d["open_epochs"]
        w = want[(a, open_e)]
        assert o["provisional"] is True and o["reward_epoch"] == open_e
        assert (o["up_slots"], o["streak_slots"], o["hw_verdict"], o["pings"], o["last_ping_us"]) == (
            w["up_slots"], w["streak_slots"], w["hw_verdict"], w["pings"], w["last_ping_us"]) == (
            5, w["streak_slots"], "verified", 5, start + 4 * minute + 7)
        assert o["uptime_ratio"] == 5 / 60 and o["last_ping_at"].startswith("20")
        # the published score is still the current one: live data only adds the open epoch
        assert d["current"]["reward_epoch"] == last
        wait_until(lambda: client.get(f"/nodes/{b}").json()["open_epochs"], 30, "node b's snapshot")
        ob = client.get(f"/nodes/{b}").json()["open_epochs"][0]
        assert (ob["up_slots"], ob["pings"]) == (2, 2) and ob["hw_verdict"] is None
        assert client.get(f"/nodes/{c}").json()["open_epochs"] == []  # epoch `last` is published: not live
        row = {n["node_id"]: n for n in client.get("/nodes", params={"limit": 200}).json()["nodes"]}
        assert row[a]["live"]["up_slots"] == 5 and row[a]["live"]["provisional"] is True
        assert row[c]["live"] is None
        live = client.get("/health").json()["live"]
        assert live["connected"] and live["messages"] >= 3 and live["live_messages"] >= 2
