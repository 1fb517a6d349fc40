"""The drawing page in a real browser: Playwright driving Debian's headless Chromium.

Screenshots of each state go to test-output/browser/. Without /usr/bin/chromium these tests are
skipped, unless REQUIRE_BROWSER=1 (as in CI), when they fail instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.helpers import ROOT, Server, start, stop

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
OUT = ROOT / "test-output" / "browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("REQUIRE_BROWSER") != "1",
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; CI sets REQUIRE_BROWSER=1)",
    ),
]

if TYPE_CHECKING:
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start({})
    yield s
    stop(s)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        yield b
        b.close()


@pytest.fixture
def page(browser: sync_api.Browser, server: Server) -> Iterator[tuple[sync_api.Page, list[str]]]:
    # bypass_csp: the page's CSP forbids eval, which Playwright's wait_for_function needs; the
    # header itself is checked in tests/app/test_api.py, and every request is recorded below.
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True, bypass_csp=True
    )
    pg = context.new_page()
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(f"http://127.0.0.1:{server.port}/")
    pg.wait_for_selector("#card dt")  # the model card has loaded
    yield pg, requests
    context.close()
    assert requests, "the page made no requests at all"
    hosts = {urlsplit(u).netloc for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {f"127.0.0.1:{server.port}"}, f"requests to other hosts: {hosts}"


SEVEN = [[(0.2, 0.2), (0.8, 0.2), (0.45, 0.85)]]  # the bar, then the long diagonal
FOUR = [[(0.6, 0.12), (0.15, 0.62), (0.85, 0.62)], [(0.65, 0.35), (0.65, 0.9)]]  # in two strokes
TWO = [[(0.2, 0.3), (0.35, 0.12), (0.65, 0.12), (0.8, 0.3), (0.75, 0.5), (0.2, 0.88), (0.85, 0.88)]]


def draw(pg: sync_api.Page, strokes: list[list[tuple[float, float]]], left: float = 0.35) -> None:
    """Strokes in a unit square as tall as the pad, its left edge at `left` of the pad's width."""
    box = pg.locator("#pad").bounding_box()
    assert box is not None
    h = box["height"]
    x, y = box["x"] + left * box["width"], box["y"]
    for stroke in strokes:
        pg.mouse.move(x + stroke[0][0] * h, y + stroke[0][1] * h)
        pg.mouse.down()
        for (ax, ay), (bx, by) in itertools.pairwise(stroke):
            for i in range(1, 21):
                t = i / 20
                pg.mouse.move(x + (ax + (bx - ax) * t) * h, y + (ay + (by - ay) * t) * h)
        pg.mouse.up()


def draw_seven(pg: sync_api.Page) -> None:
    draw(pg, SEVEN)


def bar_sum(pg: sync_api.Page) -> float:
    return float(pg.eval_on_selector_all("#bars li", "els => els.reduce((s, e) => s + Number(e.dataset.p), 0)"))


def shown_percent_sum(pg: sync_api.Page) -> float:
    texts = pg.locator("#bars .pct").all_text_contents()
    return sum(float(t.rstrip("%")) for t in texts)


def test_drawn_seven_is_read_as_seven(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    OUT.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(OUT / "0-empty.png"), full_page=True)
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    pg.wait_for_function("document.getElementById('input').src.startsWith('data:image/png')")
    pg.screenshot(path=str(OUT / "1-drawn-seven.png"), full_page=True)
    assert pg.locator("#digit").text_content() == "7"
    assert bar_sum(pg) == pytest.approx(1.0, abs=1e-6)
    assert shown_percent_sum(pg) == pytest.approx(100.0, abs=0.6)  # ten values rounded to 0.1
    assert (pg.locator("#saliency").get_attribute("src", timeout=1000) or "").startswith("data:image/png;base64,")


def test_uploaded_photo_is_read(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    pg.set_input_files("#file", str(ROOT / "examples" / "photo.jpg"))
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    pg.screenshot(path=str(OUT / "2-uploaded-photo.png"), full_page=True)
    assert pg.locator("#digit").text_content() == "2"
    assert bar_sum(pg) == pytest.approx(1.0, abs=1e-6)


def test_written_number_is_read_with_each_digit(page: tuple[sync_api.Page, list[str]]) -> None:
    """A 4 in two strokes and a 2 beside it: the page reads 42, lists each digit with its
    confidence and draws a box round each on the canvas."""
    pg, requests = page
    draw(pg, FOUR, left=0.2)
    draw(pg, TWO, left=0.55)
    pg.wait_for_function("document.getElementById('digits').children.length === 2")
    pg.screenshot(path=str(OUT / "4-drawn-number.png"), full_page=True)
    assert pg.locator("#digit").text_content() == "42"
    assert pg.locator("#digits b").all_text_contents() == ["4", "2"]
    assert all(t.endswith("%") for t in pg.locator("#digits span").all_text_contents())
    assert not pg.locator("#bars").is_visible()  # one chart per digit would mislead; the list says it
    boxed = pg.evaluate(
        "() => { const c = document.getElementById('boxes');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0); }"
    )
    assert boxed is True
    assert any(u.endswith("/predict/number") for u in requests)


def test_blank_upload_shows_the_error(page: tuple[sync_api.Page, list[str]], tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    pg, _ = page
    pg.set_input_files("#file", str(blank))
    pg.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert pg.locator("#status").text_content() == "the image is blank: no ink found"
    assert pg.locator("#digit").text_content() == "–"


def test_clear_resets(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    pg.click("#clear")
    pg.screenshot(path=str(OUT / "3-cleared.png"), full_page=True)
    assert pg.locator("#digit").text_content() == "–"
    assert bar_sum(pg) == 0
    assert pg.locator("#input").get_attribute("src") is None
    blank = pg.evaluate(
        "() => { const c = document.getElementById('pad');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every(v => v === 0); }"
    )
    assert blank is True


def test_keyboard_reaches_every_control(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    reached = []
    for _ in range(6):
        pg.keyboard.press("Tab")
        reached.append(pg.evaluate("document.activeElement.id"))
    assert {"pad", "clear", "file"} <= set(reached)


def test_a_refusal_is_shown_plainly(browser: sync_api.Browser, tmp_path: Path) -> None:
    """A checkpoint that refuses everything (the untrained tiny network under high thresholds):
    whatever is drawn, the page says in plain words that it is not a digit, with no bars."""
    from tests.model.test_refusal import STRICT, checkpoint_with

    s = start({"DIGITS_CHECKPOINT": str(checkpoint_with(tmp_path, STRICT))})
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    try:
        pg = context.new_page()
        pg.goto(f"http://127.0.0.1:{s.port}/")
        pg.wait_for_load_state("networkidle")  # (the tiny checkpoint has no training record for the card)
        draw_seven(pg)
        pg.wait_for_function("document.getElementById('status').dataset.code === 'not_a_digit'")
        assert pg.locator("#status").text_content() == (
            "That does not look like a digit. Draw digits, 0 to 9, or upload a picture of a number."
        )
        assert pg.locator("#digit").text_content() == "✗"
        assert bar_sum(pg) == 0
        OUT.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(OUT / "refused.png"))
    finally:
        context.close()
        stop(s)
