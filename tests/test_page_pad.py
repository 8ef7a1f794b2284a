"""The page's drawing pad in a real browser (Debian's chromium, driven by Playwright) on a real server.

Strokes are drawn with the mouse (and with a finger, through Chromium's touch input); the page reads them
through /edit. The server holds the shipped digits JointVAE (calibrated: digit, scale, rotation, position,
thickness) and an uncalibrated copy of it, which has no pad. The pad is pictured in docs/images/page-pad.png
(written when missing; test-artifacts/page-pad.png every run).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from page_harness import PNG_DATA_URL, pixels_of, tab_without_errors, wait_until
from playwright.sync_api import Browser, Page, ViewportSize, expect
from service_harness import REPO, serve

MODEL = "digits_joint_vae"
UNCALIBRATED = "uncalibrated"
DESKTOP = ViewportSize(width=1280, height=1000)
# Strokes in fractions of the pad, each a polyline the pen follows; both are read as their digit (100% and 98%).
ONE = [[(0.45, 0.3), (0.55, 0.22), (0.55, 0.78)]]
ZERO = [[(0.5, 0.22), (0.37, 0.35), (0.35, 0.6), (0.5, 0.78), (0.63, 0.6), (0.63, 0.35), (0.5, 0.22)]]
STEPS = 8  # pointer moves per segment


@pytest.fixture(scope="module")
def url(digits_joint_models: Path) -> Iterator[str]:
    with serve(digits_joint_models, default_model=MODEL) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with tab_without_errors(browser, DESKTOP) as tab:
        yield tab


def points(page: Page, stroke: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The stroke's polyline in page pixels, STEPS moves per segment."""
    box = page.locator("#pad").bounding_box()
    assert box is not None
    path = [stroke[0]]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
        path += [(x0 + (x1 - x0) * t / STEPS, y0 + (y1 - y0) * t / STEPS) for t in range(1, STEPS + 1)]
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in path]


def draw_with_mouse(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    for stroke in strokes:
        first, *rest = points(page, stroke)
        page.mouse.move(*first)
        page.mouse.down()
        for point in rest:
            page.mouse.move(*point)
        page.mouse.up()


def open_pad(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#explorer-title")).to_contain_text(f"{MODEL}:")
    expect(page.locator("#pad-panel")).to_be_visible()


def redrawn(page: Page) -> str:
    return page.locator("#pad-redrawn").get_attribute("src") or ""


def read_back(http: httpx.Client, data_url: str) -> dict[str, Any]:
    """What the model reads from a picture the page shows (through /edit with no factors)."""
    picture = base64.b64decode(data_url.split(",", 1)[1])
    answer = http.post("/edit", files=[("images", ("p.png", picture, "image/png"))], data={"model": MODEL})
    assert answer.status_code == 200, answer.text
    read: dict[str, Any] = answer.json()["read"][0]
    return read


def test_a_mouse_drawing_is_read_as_the_digit_drawn(page: Page, url: str) -> None:
    open_pad(page, url)
    with page.expect_response(lambda r: r.url.endswith("/edit") and r.status == 200):
        draw_with_mouse(page, ONE)
    reading = page.locator("#pad-reading")
    expect(reading).to_contain_text(re.compile(r"The model reads digit 1 \(\d+%\)"))
    expect(reading).to_contain_text("rotation")
    expect(page.locator("#pad-redrawn")).to_have_attribute("src", PNG_DATA_URL)
    # The knobs left unticked show what was read: the digit list says 1.
    expect(page.locator("#pad-knobs").get_by_label("digit", exact=True)).to_have_value("1")

    page.get_by_role("button", name="Clear the drawing").click()
    expect(reading).not_to_contain_text("digit 1")
    draw_with_mouse(page, ZERO)
    expect(reading).to_contain_text(re.compile(r"digit 0 \(\d+%\)"))


def test_a_knob_redraws_the_drawing_with_that_factor_changed(page: Page, url: str, http: httpx.Client) -> None:
    open_pad(page, url)
    draw_with_mouse(page, ONE)
    expect(page.locator("#pad-reading")).to_contain_text("digit 1")
    wait_until(lambda: redrawn(page).startswith("data:image/png"), "the redrawn drawing")
    before_src = redrawn(page)
    before = read_back(http, before_src)

    knobs = page.locator("#pad-knobs")
    knobs.get_by_label("rotation", exact=True).fill("30")
    expect(knobs.get_by_label("set rotation")).to_be_checked()
    wait_until(lambda: redrawn(page) != before_src, "the drawing redrawn at 30 degrees")
    after = read_back(http, redrawn(page))
    assert abs(after["rotation"] - 30) <= 8, after
    assert abs(pixels_of(redrawn(page)) - pixels_of(before_src)).mean() > 5
    assert after["digit"] == before["digit"] == 1
    assert abs(after["posX"] - before["posX"]) * 24 <= 1.5, (before, after)

    rotated_src = redrawn(page)
    knobs.get_by_label("digit", exact=True).select_option("7")
    wait_until(lambda: redrawn(page) != rotated_src, "the drawing redrawn as a 7")
    seven = read_back(http, redrawn(page))
    assert seven["digit"] == 7 and abs(seven["rotation"] - 30) <= 8, seven

    shot = page.locator("#pad-panel").screenshot()
    page.get_by_role("button", name="Explore the redrawing in the sliders").click()
    expect(page.get_by_role("button", name="class 7: digit 7")).to_have_attribute("aria-pressed", "true")
    for target in (REPO / "test-artifacts" / "page-pad.png", REPO / "docs" / "images" / "page-pad.png"):
        if target.parent.name == "images" and target.exists():
            continue  # the docs' picture is written once and committed
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(shot)


def test_a_finger_draws_too(browser: Browser, url: str) -> None:
    context = browser.new_context(viewport=DESKTOP, has_touch=True)
    page = context.new_page()
    open_pad(page, url)
    touch = context.new_cdp_session(page)  # Chromium's own touch input: it makes the pointer events a finger does
    first, *rest = points(page, ONE[0])
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": first[0], "y": first[1]}]})
    for x, y in rest:
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(page.locator("#pad-reading")).to_contain_text("digit 1")
    context.close()


def test_a_model_without_a_calibration_has_no_pad(page: Page, url: str) -> None:
    open_pad(page, url)
    page.get_by_label("Model", exact=True).select_option(UNCALIBRATED)
    expect(page.locator("#explorer-title")).to_contain_text(f"{UNCALIBRATED}:")
    expect(page.locator("#pad-panel")).to_be_hidden()
