"""`epochal demo` end to end at a small size: every stage runs, the report has every section,
a failing stage says which and why and exits non-zero."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from demokit import HOURS, NODES, small_demo  # noqa: F401  (the session's demo run)
from epochal.demo import DEMO_STAGES, DemoCheckFailed, DemoRun, Stage, StageFailed, run_stages

# the report's sections, by their id, in page order
SECTIONS = ["run", "inputs", "emission", "reputation", "uptime", "slashes", "suspects", "settlement", "verification",
            "earners",
            "unpaid", "truth"]


def test_the_demo_runs_every_stage_and_says_what_it_wrote(small_demo):
    assert small_demo.returncode == 0, small_demo.stdout + small_demo.stderr
    lines = small_demo.stdout.splitlines()
    for number, stage in enumerate(DEMO_STAGES, 1):
        assert any(line.startswith(f"{number}. ") for line in lines), (stage.key, small_demo.stdout)
    assert f"simulated {NODES} nodes over {HOURS} h" in small_demo.stdout
    assert "from the packaged trace profile" in small_demo.stdout or "from the traces in" in small_demo.stdout
    assert f"verified all {HOURS} published epochs from" in small_demo.stdout
    assert f"report: {small_demo.report}" in small_demo.stdout
    for path in (small_demo.out / "events", small_demo.out / "epochal.duckdb",
                 small_demo.out / "epochal.duckdb.published", small_demo.report):
        assert str(path) in small_demo.stdout and path.exists()
    assert "investigated farming:" in small_demo.stdout
    assert (small_demo.out / "investigation" / "suspects.json").is_file()
    assert (small_demo.out / "investigation" / "report.html").is_file()


def test_the_report_has_every_section_with_its_pictures(small_demo):
    page = small_demo.report.read_text()
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == SECTIONS
    section = dict(zip(ids, re.split(r'<section id="[a-z]+">', page)[1:]))
    assert section["emission"].count("<rect") >= 3 * HOURS  # three stacked parts per epoch
    assert "<polyline" in section["emission"]
    assert section["reputation"].count("<rect") > 10
    assert 'src="data:image/png;base64,' in section["uptime"]
    assert "hardware_fraud" in section["slashes"]  # seed 3 plants spoofers
    assert "farm" in section["truth"] and "spoofer" in section["truth"]
    # every epoch re-derived from the published folder alone
    assert section["verification"].count("✓") >= HOURS and "✗" not in section["verification"]
    # self-contained: nothing is fetched
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page


def test_every_epoch_is_validated_paid_once_on_chain_and_reconciles(small_demo):
    import duckdb

    assert "reconciled" in small_demo.stdout and "no difference" in small_demo.stdout
    store = duckdb.connect(str(small_demo.out / "epochal.duckdb"), read_only=True)
    try:
        allocated = dict(store.execute("SELECT reward_epoch, allocated_base_units FROM reward_epochs").fetchall())
    finally:
        store.close()
    treasury = duckdb.connect(str(small_demo.out / "epochal.duckdb.treasury.duckdb"), read_only=True)
    try:
        paid = dict(treasury.execute("SELECT reward_epoch, sum(amount_base_units)::BIGINT FROM settlements"
                                     " WHERE status = 'confirmed' GROUP BY 1").fetchall())
        memos = treasury.execute("SELECT signature, memo FROM settlements ORDER BY reward_epoch, batch").fetchall()
    finally:
        treasury.close()
    assert {e: a for e, a in allocated.items() if a} == paid  # every epoch that allocated anything, paid in full
    page = small_demo.report.read_text()
    section = page.split('<section id="settlement">', 1)[1].split("</section>", 1)[0]
    assert "no difference" in section
    for signature, memo in memos:  # every transaction in the report with its signature and memo
        assert signature in section and memo in section
    checks = page.split('<section id="verification">', 1)[1].split("</section>", 1)[0]
    assert checks.count("✓") >= 3 * HOURS and "✗" not in checks  # published folder, validation, paid


def test_the_investigation_finds_the_planted_farms(small_demo):
    import json

    truth = json.loads((small_demo.out / "events" / "truth.json").read_text())
    doc = json.loads((small_demo.out / "investigation" / "suspects.json").read_text())
    flagged = {n for c in doc["clusters"] if c["score"] >= doc["min_score"] for n in c["node_ids"]}
    farms = [p for p in truth["plants"] if p["kind"] == "farm"]
    planted = {n for p in truth["plants"] if p["kind"] in ("farm", "spoofer") for n in p["node_ids"]}
    assert farms
    for farm in farms:  # every farm caught, each with at least half its nodes
        assert 2 * len(flagged & set(farm["node_ids"])) >= len(farm["node_ids"]), farm["params"].get("farm_id")
    precision = len(flagged & planted) / len(flagged)
    recall = len(flagged & planted) / len(planted)
    assert precision >= 0.9 and recall >= 0.8, (precision, recall)
    # and the report says so, with the same figures
    page = small_demo.report.read_text()
    suspects = page.split('<section id="suspects">', 1)[1].split("</section>", 1)[0]
    assert f"precision <b>{precision:.2f}</b>, recall <b>{recall:.2f}</b>" in suspects
    assert suspects.count("<rect") >= len(farms)  # the farms' timeline and the clusters' scores are drawn


def test_the_uptime_heat_map_is_a_valid_png_of_every_node_and_slot(small_demo):
    import base64
    import struct
    import zlib

    page = small_demo.report.read_text()
    data = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert height == NODES and width == 8 + HOURS * 60
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + 3 * width)


def _number(key: str) -> int:
    return [s.key for s in DEMO_STAGES].index(key) + 1


def _stage(key, fn):
    return Stage(key, key, fn)


def test_a_failing_stage_is_named_with_its_reason_and_nothing_after_it_runs(tmp_path):
    ran = []

    def ok(run, meter):
        ran.append("ok")
        return "fine"

    def check(run, meter):
        raise DemoCheckFailed("epoch 3 does not recompute identically")

    def boom(run, meter):
        raise KeyError("x")

    run = DemoRun(out_dir=tmp_path, nodes=1, hours=1, seed=0)
    with pytest.raises(StageFailed) as exc:
        run_stages(run, [_stage("first", ok), _stage("verify", check), _stage("later", ok)])
    assert str(exc.value) == "demo stage 2 (verify) failed: epoch 3 does not recompute identically"
    assert not exc.value.unexpected and ran == ["ok"]
    with pytest.raises(StageFailed) as exc:
        run_stages(DemoRun(out_dir=tmp_path, nodes=1, hours=1, seed=0), [_stage("settle", boom)])
    assert str(exc.value) == "demo stage 1 (settle) failed: KeyError: 'x'" and exc.value.unexpected


def test_the_command_exits_non_zero_naming_the_failed_stage(tmp_path, monkeypatch):
    from epochal import demo
    from epochal.cli import app

    def differs(root, epochs, progress=None):
        return {e: [f"reward_epochs.allocated_base_units: stored 1, recomputed 2"] if e == 1 else [] for e in epochs}

    monkeypatch.setattr(demo, "verify_published_epochs", differs)
    res = CliRunner().invoke(app, ["demo", "--nodes", "20", "--hours", "2", "--out", str(tmp_path / "d")])
    assert res.exit_code != 0
    assert isinstance(res.exception, Exception)
    n = _number("verify_published")
    assert (f"demo stage {n} (verify_published) failed: epoch 1 as published does not re-derive from the folder"
            " alone: reward_epochs.allocated_base_units: stored 1, recomputed 2") in str(res.exception)


def test_an_unexpected_error_keeps_its_traceback_in_a_log_not_on_the_screen(tmp_path, monkeypatch):
    import subprocess
    import sys

    # the report stage breaks: the store is fine, the page cannot be written
    out = tmp_path / "d"
    (out / "report.html").mkdir(parents=True)
    (out / "report.html" / "keep").write_text("a folder where the page goes")
    res = subprocess.run([sys.executable, "-m", "epochal.cli", "demo", "--nodes", "20", "--hours", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"epochal: demo stage {_number('report')} (report) failed: "), res.stderr
    assert "Traceback" not in res.stderr
    assert "Traceback" in (out / "demo-error.log").read_text()


def test_serve_starts_the_explorer_on_localhost_and_prints_its_address(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "epochal.cli", "demo", "--nodes", "30", "--hours", "3",
                             "--out", str(tmp_path / "d"), "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 300
        lines = []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving the buyer API and node explorer at " in line:
                url = line.split(" at ", 1)[1].split()[0]
        assert url == f"http://127.0.0.1:{port}/", "".join(lines) + proc.stderr.read()
        health = httpx.get(url + "health", timeout=10).json()
        assert health["published_epochs"] == 3 and health["nodes"] == 30, health
        assert httpx.get(url + "epochs", timeout=10).json()["epochs"]
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "explorer" in page.text
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=30)
        assert code == 0, (code, proc.stdout.read(), proc.stderr.read())
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_taken_port_is_refused_before_any_stage_runs(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "epochal.cli", "demo", "--nodes", "5", "--hours", "1",
                              "--out", str(tmp_path / "d"), "--serve", "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"epochal: cannot listen on 127.0.0.1:{port}") and "Traceback" not in res.stderr
