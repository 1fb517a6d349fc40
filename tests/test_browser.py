"""The drawing page in a real browser: Playwright driving Debian's headless Chromium.

Screenshots of each state go to test-output/browser/. Without /usr/bin/chromium these tests are
skipped, unless REQUIRE_BROWSER=1 (as in CI), when they fail instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from app.feedback.store import FeedbackStore
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


#: The sizes people meet: a desktop window and a phone held upright (touch).
SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "has_touch": True},
}


def open_page(
    browser: sync_api.Browser, port: int, size: str
) -> tuple[sync_api.BrowserContext, sync_api.Page, list[str], list[str]]:
    # bypass_csp: the page's CSP forbids eval, which Playwright's wait_for_function needs; the
    # header itself is checked in tests/app/test_api.py, and every request is recorded.
    context = browser.new_context(**SIZES[size], bypass_csp=True)  # type: ignore[arg-type]
    pg = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not answered_4xx(m.text) else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"http://127.0.0.1:{port}/")
    return context, pg, requests, errors


def answered_4xx(message: str) -> bool:
    """Chromium logs every 4xx answer as an error; the API's 422 to a blank image or a non-digit
    is the page working as meant, and the tests check what it shows."""
    return message.startswith("Failed to load resource: the server responded with a status of 4")


def only_this_host(requests: list[str], port: int) -> None:
    assert requests, "the page made no requests at all"
    hosts = {urlsplit(u).netloc for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {f"127.0.0.1:{port}"}, f"requests to other hosts: {hosts}"


@pytest.fixture(params=sorted(SIZES))
def page(
    request: pytest.FixtureRequest, browser: sync_api.Browser, server: Server
) -> Iterator[tuple[sync_api.Page, list[str]]]:
    context, pg, requests, errors = open_page(browser, server.port, request.param)
    pg.wait_for_selector("#card dt")  # the model card has loaded
    pg.size = request.param  # type: ignore[attr-defined]  # (names the screenshots)
    yield pg, requests
    context.close()
    only_this_host(requests, server.port)
    assert errors == [], f"console errors: {errors}"


def drawn_right(pg: sync_api.Page, state: str) -> None:
    """What is drawn, not only what the DOM says: the panel's state; every visible image loaded (no
    broken icons); every probability bar's fill as wide as its number says, within 2 px; and a
    screenshot of it kept in test-output/browser/."""
    assert pg.get_attribute("#answer-panel", "data-state") == state
    pg.wait_for_function("[...document.images].every(i => i.complete)")
    broken = pg.evaluate(
        """() => [...document.images].filter(i => {
             const r = i.getBoundingClientRect();
             return getComputedStyle(i).visibility === 'visible' && r.width > 0 && r.height > 0
               && i.naturalWidth === 0; }).map(i => i.id || i.src)"""
    )
    assert broken == [], f"visible images with nothing drawn: {broken}"
    bars = pg.evaluate(
        """() => [...document.querySelectorAll('#bars li')].map(li => [Number(li.dataset.p),
             li.querySelector('.fill').getBoundingClientRect().width,
             li.querySelector('.track').getBoundingClientRect().width])"""
    )
    for p, fill, track in bars:
        if state == "digit":
            assert track > 50, f"a bar's track is {track} px wide"
        assert abs(fill - p * track) <= 2, f"a bar for p={p} is {fill} px of {track}"
    OUT.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(OUT / f"{getattr(pg, 'size', 'phone')}-{state}.png"), full_page=True)


def answer_height(pg: sync_api.Page) -> tuple[float, float]:
    """Where the answer panel starts and how tall it is: neither moves between states."""
    box = pg.locator("#answer-panel").bounding_box()
    assert box is not None
    return box["y"], box["height"]


SEVEN = [[(0.2, 0.2), (0.8, 0.2), (0.45, 0.85)]]  # the bar, then the long diagonal
FOUR = [[(0.6, 0.12), (0.15, 0.62), (0.85, 0.62)], [(0.65, 0.35), (0.65, 0.9)]]  # in two strokes
TWO = [[(0.2, 0.3), (0.35, 0.12), (0.65, 0.12), (0.8, 0.3), (0.75, 0.5), (0.2, 0.88), (0.85, 0.88)]]


def draw(pg: sync_api.Page, strokes: list[list[tuple[float, float]]], left: float = 0.35) -> None:
    """Strokes in a unit square 0.8 of the pad's height, its left edge at `left` of the pad's width."""
    box = pg.locator("#pad").bounding_box()
    assert box is not None
    h = 0.8 * box["height"]
    x, y = box["x"] + left * box["width"], box["y"] + 0.1 * box["height"]
    for stroke in strokes:
        pg.mouse.move(x + stroke[0][0] * h, y + stroke[0][1] * h)
        pg.mouse.down()
        for (ax, ay), (bx, by) in itertools.pairwise(stroke):
            for i in range(1, 21):
                t = i / 20
                pg.mouse.move(x + (ax + (bx - ax) * t) * h, y + (ay + (by - ay) * t) * h)
        pg.mouse.up()


LETTER_A = [[(0.15, 0.95), (0.5, 0.05), (0.85, 0.95)], [(0.3, 0.6), (0.7, 0.6)]]
THREE = [[(0.2, 0.15), (0.45, 0.05), (0.75, 0.15), (0.75, 0.35), (0.45, 0.48), (0.8, 0.62), (0.8, 0.85),
          (0.5, 0.97), (0.2, 0.88)]]  # fmt: skip


def draw_seven(pg: sync_api.Page) -> None:
    draw(pg, SEVEN)


def bar_sum(pg: sync_api.Page) -> float:
    return float(pg.eval_on_selector_all("#bars li", "els => els.reduce((s, e) => s + Number(e.dataset.p), 0)"))


def shown_percent_sum(pg: sync_api.Page) -> float:
    texts = pg.locator("#bars .pct").all_text_contents()
    return sum(float(t.rstrip("%")) for t in texts)


def box(pg: sync_api.Page, selector: str) -> Any:
    b = pg.locator(selector).first.bounding_box()
    assert b is not None, selector
    return b


def test_first_load_invites_without_broken_images(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    drawn_right(pg, "empty")
    assert pg.locator("#verdict").text_content() == "Draw a digit or a number"
    assert not pg.locator("#input").is_visible()
    assert not pg.locator("#bars").is_visible()
    assert pg.locator("#digit").text_content() == ""


def test_layout_uses_the_room(page: tuple[sync_api.Page, list[str]]) -> None:
    """Desktop: drawing and answer side by side; the canvas fills its panel. Phone: a canvas of at
    least 300x200 px, nothing wider than the screen."""
    pg, _ = page
    pad, panel, answer = box(pg, "#pad"), box(pg, "section.panel"), box(pg, "#answer-panel")
    assert pad["width"] >= panel["width"] - 2 * 16 - 4, f"the canvas stops short: {pad['width']} of {panel['width']}"
    if pg.size == "desktop":  # type: ignore[attr-defined]
        assert answer["x"] >= panel["x"] + panel["width"]  # beside it, level with it
        assert abs(answer["y"] - panel["y"]) < 2
        assert pad["width"] >= 600
    else:
        assert pad["width"] >= 300, pad
        assert pad["height"] >= 200, pad
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_drawn_seven_is_read_as_seven(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    before = answer_height(pg)
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    pg.wait_for_function("document.getElementById('input').src.startsWith('data:image/png')")
    assert pg.locator("#digit").text_content() == "7"
    drawn_right(pg, "digit")
    top = pg.evaluate("document.querySelector('#bars li.top .fill').getBoundingClientRect().width")
    assert top > 50  # the winner's bar is drawn, not an empty track
    assert bar_sum(pg) == pytest.approx(1.0, abs=1e-6)
    assert shown_percent_sum(pg) == pytest.approx(100.0, abs=0.6)  # ten values rounded to 0.1
    assert (pg.locator("#saliency").get_attribute("src", timeout=1000) or "").startswith("data:image/png;base64,")
    assert answer_height(pg) == pytest.approx(before, abs=1)


def test_drawn_letter_a_is_not_a_digit(page: tuple[sync_api.Page, list[str]]) -> None:
    """The shipped checkpoint refuses a capital A drawn on the page, and says so in plain words."""
    pg, _ = page
    draw(pg, LETTER_A)
    pg.wait_for_function("document.getElementById('status').dataset.code === 'not_a_digit'")
    drawn_right(pg, "refused")
    assert pg.locator("#verdict").text_content() == "Not a digit"
    assert bar_sum(pg) == 0


def test_drawn_three_is_read_as_three(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    draw(pg, THREE)
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    assert pg.locator("#digit").text_content() == "3"
    drawn_right(pg, "digit")


def test_uploaded_photo_is_read(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    pg.set_input_files("#file", str(ROOT / "examples" / "photo.jpg"))
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    assert pg.locator("#digit").text_content() == "2"
    assert bar_sum(pg) == pytest.approx(1.0, abs=1e-6)


def test_written_number_is_read_with_each_digit(page: tuple[sync_api.Page, list[str]]) -> None:
    """A 4 in two strokes and a 2 beside it: the page reads 42, lists each digit with its
    confidence and draws a labelled box round each on the canvas; the panel keeps its height."""
    pg, requests = page
    before = answer_height(pg)
    draw(pg, FOUR, left=0.15)
    draw(pg, TWO, left=0.55)
    pg.wait_for_function("document.getElementById('digits').children.length === 2")
    drawn_right(pg, "number")
    assert pg.locator("#digit").text_content() == "42"
    assert pg.locator("#digits b").all_text_contents() == ["4", "2"]
    assert all(t.endswith("%") for t in pg.locator("#digits span").all_text_contents())
    assert not pg.locator("#bars").is_visible()  # one chart per digit would mislead; the list says it
    boxed = pg.evaluate(
        "() => { const c = document.getElementById('boxes');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0); }"
    )
    assert boxed is True
    label_px = pg.evaluate(
        "() => { const c = document.getElementById('boxes');"
        " return parseFloat(c.getContext('2d').font.match(/(\\d+(\\.\\d+)?)px/)[1]) * c.clientWidth / c.width; }"
    )
    assert label_px >= 14, f"the boxes' labels are {label_px} CSS px high"
    assert answer_height(pg) == pytest.approx(before, abs=1)
    assert any(u.endswith("/predict/number") for u in requests)


def test_blank_upload_shows_the_error(page: tuple[sync_api.Page, list[str]], tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    pg, _ = page
    pg.set_input_files("#file", str(blank))
    pg.wait_for_function("document.getElementById('status').classList.contains('error')")
    drawn_right(pg, "error")
    assert pg.locator("#status").text_content() == "the image is blank: no ink found"
    assert pg.locator("#error-detail").text_content() == "the image is blank: no ink found"
    assert pg.locator("#verdict").text_content() == "Could not read that"


def test_clear_resets(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, _ = page
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('digit').dataset.digit !== ''")
    pg.click("#clear")
    drawn_right(pg, "empty")
    assert pg.locator("#digit").text_content() == ""
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
    for _ in range(8):
        pg.keyboard.press("Tab")
        reached.append(pg.evaluate("document.activeElement.id"))
    assert {"pad", "clear", "file"} <= set(reached)


def test_model_card_leads_with_what_it_reads(page: tuple[sync_api.Page, list[str]]) -> None:
    """What it reads, how accurate and on what first; the jargon folded below; captions beside
    their pictures; the pictures' titles large enough to read."""
    pg, _ = page
    assert pg.locator("#card dt").all_text_contents() == ["Reads", "Accuracy", "Trained on", "Not a digit"]
    assert "MNIST test digits" in (pg.locator("#card dd").nth(1).text_content() or "")
    assert not pg.locator("#card-details").is_visible()
    assert "SHA-256" not in (pg.locator("#card").text_content() or "")
    pg.click(".card summary")
    layers = pg.locator("#card-details .layers-list li").all_text_contents()
    assert layers
    assert not any("->" in t for t in layers)
    assert not any(t.lstrip().startswith("→") for t in layers)
    for fig in pg.locator(".report figure").all():
        caption, img = fig.locator("figcaption").bounding_box(), fig.locator("img").bounding_box()
        assert caption is not None
        assert img is not None
        assert 0 <= img["y"] - (caption["y"] + caption["height"]) <= 12, "a caption far from its picture"
    shown = box(pg, ".report img[src$='misclassified.png']")["width"]
    natural = pg.evaluate("document.querySelector(\".report img[src$='misclassified.png']\").naturalWidth")
    assert 22 * shown / natural >= 11  # the titles, 22 px in the picture (16 pt at 100 dpi), as shown
    drawn_right(pg, "empty")


def test_a_refusal_is_shown_plainly(browser: sync_api.Browser, tmp_path: Path) -> None:
    """A checkpoint that refuses everything (the untrained tiny network under high thresholds):
    whatever is drawn, the page says in plain words that it is not a digit, with no bars."""
    from tests.model.test_refusal import STRICT, checkpoint_with

    s = start({"DIGITS_CHECKPOINT": str(checkpoint_with(tmp_path, STRICT))})
    try:
        for size in sorted(SIZES):
            context, pg, requests, errors = open_page(browser, s.port, size)
            pg.size = size  # type: ignore[attr-defined]
            pg.wait_for_load_state("networkidle")  # (the tiny checkpoint has no training record for the card)
            before = answer_height(pg)
            draw_seven(pg)
            pg.wait_for_function("document.getElementById('status').dataset.code === 'not_a_digit'")
            drawn_right(pg, "refused")
            assert pg.locator("#status").text_content() == (
                "That does not look like a digit. Draw digits, 0 to 9, or upload a picture of a number."
            )
            assert pg.locator("#verdict").text_content() == "Not a digit"
            assert bar_sum(pg) == 0
            assert answer_height(pg) == pytest.approx(before, abs=1)
            context.close()
            only_this_host(requests, s.port)
            assert errors == [], errors
    finally:
        stop(s)


@pytest.mark.parametrize(("path", "selector"), [("/docs", ".opblock"), ("/redoc", "[data-section-id]")])
def test_api_docs_render_with_no_other_host(
    browser: sync_api.Browser, server: Server, path: str, selector: str
) -> None:
    """/docs and /redoc with every other host blocked and the CSP in force: the operations render."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    others: list[str] = []
    errors: list[str] = []

    def route(r: sync_api.Route) -> None:
        if urlsplit(r.request.url).netloc == f"127.0.0.1:{server.port}":
            r.continue_()
        else:
            others.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        pg.goto(f"http://127.0.0.1:{server.port}{path}")
        pg.wait_for_selector(selector, timeout=20_000)
        assert pg.locator(selector).count() >= 5
        OUT.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(OUT / f"desktop-{path.strip('/')}.png"))
    finally:
        context.close()
    assert others == []
    # ReDoc's sidebar links to Redocly with a logo from its CDN: the CSP blocks it (nothing leaves), and says so
    assert [e for e in errors if "cdn.redoc.ly" not in e] == []


@pytest.fixture(scope="module")
def feedback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server taking corrections into a SQLite file: the page's feedback buttons (docs/feedback.md)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.db'}"
    s = start({"DIGITS_FEEDBACK_DB": url})
    yield s, url
    stop(s)


def inside(inner: Any, outer: Any) -> bool:
    return bool(inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
                and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
                and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)  # fmt: skip


def apart(boxes: list[Any]) -> bool:
    """No two boxes overlap."""
    return all(
        a["x"] + a["width"] <= b["x"] + 0.5 or b["x"] + b["width"] <= a["x"] + 0.5
        or a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5
        for i, a in enumerate(boxes) for b in boxes[i + 1 :]
    )  # fmt: skip


def visible_buttons(pg: sync_api.Page, selector: str) -> list[Any]:
    return [b.bounding_box() for b in pg.locator(selector).all() if b.is_visible()]


@pytest.mark.parametrize("size", sorted(SIZES))
def test_a_wrong_digit_is_corrected_on_the_page(browser: sync_api.Browser, feedback_server: tuple[Server, str],
                                                size: str) -> None:  # fmt: skip
    srv, url = feedback_server
    context, pg, _, errors = open_page(browser, srv.port, size)
    pg.wait_for_selector("#card dt")
    pg.wait_for_function("!document.getElementById('feedback').hidden")
    empty = answer_height(pg)
    assert not pg.locator("#fb-right").is_visible()  # nothing to correct yet, its room kept
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('answer-panel').dataset.state === 'digit'")
    assert pg.locator("#digit").text_content() == "7"
    assert answer_height(pg) == pytest.approx(empty, abs=1)
    panel = box(pg, "#answer-panel")
    asked = [box(pg, "#fb-right"), box(pg, "#fb-wrong")]
    assert all(inside(b, panel) and b["height"] >= 28 for b in asked)
    assert apart(asked)
    pg.click("#fb-wrong")
    panel = box(pg, "#answer-panel")  # measured again: the click may scroll the page
    choices = visible_buttons(pg, "#fb-digits button")
    assert len(choices) == 11  # ten digits and "not a digit"
    assert all(inside(b, panel) and b["height"] >= 28 and b["width"] >= 28 for b in choices), (panel, choices)
    assert apart(choices)
    assert not pg.locator("#fb-number-input").is_visible()
    pg.screenshot(path=str(OUT / f"{size}-feedback-choose.png"), full_page=True)
    assert answer_height(pg)[1] == pytest.approx(empty[1], abs=1)  # as tall (the click may have scrolled)
    pg.click('#fb-digits button[data-label="1"]')
    pg.wait_for_function("document.getElementById('feedback').dataset.step === 'thanks'")
    assert pg.locator("#fb-thanks").text_content() == "Thanks: noted that it is 1."
    assert inside(box(pg, "#fb-thanks"), box(pg, "#answer-panel"))
    pg.screenshot(path=str(OUT / f"{size}-feedback-thanks.png"), full_page=True)
    context.close()
    assert errors == []
    rows = [r for r in FeedbackStore(url, 1000).records() if r.label == "1"]
    assert rows, "no record with the label chosen"
    assert (rows[-1].predicted, rows[-1].endpoint, rows[-1].input_count) == ("7", "number", 1)
    assert rows[-1].request_id  # the answer's X-Request-ID went with it


def test_a_number_is_corrected_by_typing_it(browser: sync_api.Browser, feedback_server: tuple[Server, str]) -> None:
    srv, url = feedback_server
    context, pg, _, errors = open_page(browser, srv.port, "desktop")
    pg.wait_for_function("!document.getElementById('feedback').hidden")
    draw(pg, FOUR, left=0.15)
    draw(pg, TWO, left=0.55)
    pg.wait_for_function("document.getElementById('digits').children.length === 2")
    pg.click("#fb-wrong")
    assert visible_buttons(pg, "#fb-digits button") == []
    pg.fill("#fb-number-input", "43")
    pg.click("#fb-number button[type=submit]")
    pg.wait_for_function("document.getElementById('feedback').dataset.step === 'thanks'")
    assert pg.locator("#fb-thanks").text_content() == "Thanks: noted that it is 43."
    context.close()
    assert errors == []
    (row,) = [r for r in FeedbackStore(url, 1000).records() if r.label == "43"]
    assert (row.predicted, row.input_count) == ("42", 2)


def test_right_is_one_click(browser: sync_api.Browser, feedback_server: tuple[Server, str]) -> None:
    srv, url = feedback_server
    context, pg, _, _ = open_page(browser, srv.port, "phone")
    pg.wait_for_function("!document.getElementById('feedback').hidden")
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('answer-panel').dataset.state === 'digit'")
    pg.click("#fb-right")
    pg.wait_for_function("document.getElementById('feedback').dataset.step === 'thanks'")
    assert pg.locator("#fb-thanks").text_content() == "Thanks: noted as right."
    context.close()
    assert any(r.label == "7" and r.right for r in FeedbackStore(url, 1000).records())


def test_nothing_is_shown_when_feedback_is_off(page: tuple[sync_api.Page, list[str]]) -> None:
    pg, requests = page
    draw_seven(pg)
    pg.wait_for_function("document.getElementById('answer-panel').dataset.state === 'digit'")
    assert pg.locator("#feedback").bounding_box() is None  # not laid out at all
    assert not pg.locator("#fb-right").is_visible()
    assert any(u.endswith("/feedback/status") for u in requests)
