"""The node explorer in a real browser: Debian's headless Chromium, driven by Playwright through
`executable_path` (Playwright's own browser download does not work here), against the real
server (`epochal serve` in a subprocess) on localhost. It filters the table, opens a node, and
the breakdown shows the same numbers as the API."""

from __future__ import annotations

import httpx
import pytest

from apikit import Server, published_folder
from demokit import chromium_executable  # Debian's chromium (.ci/run installs it)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPONENTS = ("rep_availability", "rep_jobs", "rep_hardware", "rep_tenure", "rep_penalty")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = published_folder(tmp_path_factory)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    s = Server(["--published", str(data["root"]), "--db", str(data["db"])], log)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    exe = chromium_executable()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield pg
        finally:
            browser.close()


def wait_loaded(page, what: str) -> None:
    page.wait_for_function(f"document.body.dataset.loaded === {what!r}", timeout=20_000)


def test_filter_the_table_open_a_node_and_see_the_api_numbers(server, page, tmp_path):
    page.goto(server.base + "/")
    wait_loaded(page, "nodes")
    everyone = page.locator("#nodes tbody tr").count()
    assert everyone == server.get("/nodes").json()["matching"] > 0

    # filter: enterprise nodes that are eligible
    page.select_option("select[name=class]", "enterprise")
    page.select_option("select[name=eligible]", "true")
    page.click("#apply")
    wait_loaded(page, "nodes")
    api = server.get("/nodes", params={"class": "enterprise", "eligible": "true"}).json()
    shown = page.locator("#nodes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.node)")
    assert shown == [n["node_id"] for n in api["nodes"]] and 0 < len(shown) < everyone
    assert set(page.locator("#nodes tbody tr td:nth-child(3)").all_inner_texts()) == {"enterprise"}

    # sort by a header: ascending streak, as the API orders it
    page.click("#nodes th[data-sort=streak_slots]")
    wait_loaded(page, "nodes")
    page.click("#nodes th[data-sort=streak_slots]")
    wait_loaded(page, "nodes")
    api = server.get("/nodes", params={"class": "enterprise", "eligible": "true", "sort": "streak_slots"}).json()
    shown = page.locator("#nodes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.node)")
    assert shown == [n["node_id"] for n in api["nodes"]]

    # open the first node: its breakdown shows exactly the API's numbers
    node = shown[0]
    page.click(f"#nodes tbody tr[data-node='{node}'] a")
    wait_loaded(page, "node")
    d = server.get(f"/nodes/{node}", params={"epochs": 48}).json()
    assert page.inner_text("#node-title") == node
    for c in COMPONENTS:
        cell = page.locator(f"#breakdown tr[data-component={c}] td[data-field={c}]")
        want = d["current"]["components"][c]
        assert float(cell.get_attribute("data-value")) == want, c
        assert cell.inner_text() == f"{want:.6f}"
    assert int(page.get_attribute("#reputation", "data-value")) == d["current"]["reputation"]
    assert d["current"]["ruleset_version"] in page.inner_text("#ruleset")
    # an uptime strip per epoch, its up cells the epoch's up slots; a reward bar per epoch
    strips = page.locator("#strips .strip")
    assert strips.count() == len(d["epochs"])
    for i, e in enumerate(d["epochs"]):
        assert strips.nth(i).locator(".cells span.up").count() == e["up_slots"]
    assert page.locator("#reward-chart svg rect").count() == len(d["epochs"])
    page.screenshot(path=str(tmp_path / "node.png"), full_page=True)

    # back to the list
    page.click("#back")
    wait_loaded(page, "nodes")
    assert httpx.get(server.base + "/static/explorer.js").status_code == 200
