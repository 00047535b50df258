"""The demo's report in a real browser (Debian's chromium, driven by Playwright, offline): the page
renders, every section is on screen, and every picture has something drawn in it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from demokit import chromium_executable, small_demo  # noqa: F401  (the session's demo run)

PICTURES = ["#emission svg.chart", "#reputation svg.chart", "#uptime img.heat", "#slashes svg.chart",
            "#suspects svg.chart >> nth=1", "#settlement svg.chart"]  # (the second: each cluster's score; the first, the farms' timeline, is sparse)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)


def _colours(png: bytes) -> tuple[float, float, int]:
    """(share of pixels that are not (near) white, share that are coloured (not grey: the data,
    not the axes and text), distinct colours) of a screenshot."""
    px = _pixels(png)
    inked = (px.min(axis=1) < 235).mean()
    coloured = (px.max(axis=1) - px.min(axis=1) > 40).mean()
    return float(inked), float(coloured), len(np.unique(px, axis=0))


@pytest.fixture(scope="module")
def page(small_demo):
    from playwright.sync_api import sync_playwright

    assert small_demo.returncode == 0, small_demo.stderr
    exe = chromium_executable()
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = browser.new_page(viewport={"width": 1200, "height": 900})
            pg.on("request", lambda r: requests.append(r.url))
            pg.goto(small_demo.report.as_uri())
            pg.wait_for_load_state("load")
            yield pg, requests
        finally:
            browser.close()


def test_the_report_opens_offline_and_fetches_nothing(page):
    pg, requests = page
    assert pg.title().startswith("epochal demo")
    assert [u for u in requests if not u.startswith("file:") and not u.startswith("data:")] == []


def test_a_screenshot_of_the_whole_report_is_not_blank(page, tmp_path):
    pg, _ = page
    shot = pg.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(shot)
    inked, coloured, colours = _colours(shot)
    assert inked > 0.08 and coloured > 0.03 and colours > 50, (inked, coloured, colours)
    assert pg.evaluate("document.body.scrollHeight") > 3000  # every section laid out, not an empty page


@pytest.mark.parametrize("selector", PICTURES)
def test_every_picture_is_drawn(page, selector):
    pg, _ = page
    el = pg.locator(selector).first
    box = el.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100, box
    inked, coloured, colours = _colours(el.screenshot())
    assert inked > 0.05 and coloured > 0.02 and colours >= 4, (selector, inked, coloured, colours)


def test_the_heat_map_shows_up_and_down_slots(page):
    pg, _ = page
    r, g, b = _pixels(pg.locator("#uptime img.heat").screenshot()).T
    up = ((g > r + 30) & (g < 140)).mean()  # deep green
    down = ((r > 230) & (g > 215) & (g < 245) & (b < 225)).mean()  # pale sand
    assert up > 0.3 and down > 0.01, (up, down)
