"""The page's categorical parts in a real browser (Debian's chromium, driven by Playwright) on a real server.

The server holds the session's JointVAE (dSprites, a 3-class ``shape`` part, calibrated) and InfoGAN (digits,
a 10-class part, noise) smoke models, trained and exported by our code, and two shipped models: the
continuous-only digits beta-TCVAE, whose calibration names digits, and the digits InfoGAN, pictured in
docs/images/page-picker.png (written when missing; test-artifacts/page-picker.png every run).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from page_harness import (
    PNG_DATA_URL,
    pixels_of,
    sent_json,
    tab_without_errors,
    wait_until,
)
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Locator, Page, Response, ViewportSize, expect
from service_harness import REPO, copy_artifact, serve

from training.data.digits import Digits
from training.data.dsprites import DSprites

DESKTOP = ViewportSize(width=1280, height=900)
JOINT, INFOGAN = "joint", "infogan"
CONTINUOUS = "digits_beta_tcvae"  # shipped, continuous only, calibrated on the digits' factors
PICTURED = "digits_infogan"  # shipped, with a categorical part and noise
SHIPPED = REPO / "models"
HEART = [2, 5, 0, 8, 24]  # dSprites factor classes: heart, largest scale, orientation 0, left of centre, low
SEVEN = [7, 3, 3, 4, 2, 2]  # digits factor classes: a 7, full size, upright, centred, high, the font's stroke


@pytest.fixture(scope="module")
def url(joint_artifact: Path, infogan_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("page-classes") / "models"
    copy_artifact(joint_artifact, root, JOINT)
    copy_artifact(infogan_artifact, root, INFOGAN)
    for name in (CONTINUOUS, PICTURED):
        copy_artifact(SHIPPED / name, root, name)
    with serve(root, default_model=JOINT) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab; the test fails on any script error the page raises."""
    with tab_without_errors(browser, DESKTOP) as tab:
        yield tab


def show(page: Page, url: str, model: str) -> dict[str, Any]:
    """Open the page on ``model``, once its decoded picture is in; its /models entry."""
    page.goto(url)
    expect(page.locator("main")).to_be_visible()
    page.get_by_label("Model", exact=True).select_option(model)
    expect(page.locator("#explorer-title")).to_contain_text(f"{model}:")
    expect(page.locator("#decoded")).to_have_attribute("src", PNG_DATA_URL)
    info: dict[str, Any] = page.evaluate(f"fetch('models/{model}').then(r => r.json())")
    return info


def buttons(page: Page, part: str) -> Locator:
    return page.get_by_role("group", name=f"{part}:").get_by_role("button")


def thumbnails_loaded(group: Locator) -> bool:
    loaded: list[bool] = group.locator("img").evaluate_all(
        "images => images.map(i => i.src.startsWith('data:image/png') && i.complete && i.naturalWidth > 0)"
    )
    return bool(loaded) and all(loaded)


def src(locator: Locator) -> str:
    return locator.get_attribute("src") or ","


def decoded(http: httpx.Client, body: dict[str, Any]) -> np.ndarray:
    answer = http.post("/decode", json=body)
    assert answer.status_code == 200, answer.text
    return pixels_of("data:image/png;base64," + answer.json()["images"][0])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def is_decode(response: Response) -> bool:
    return response.url.endswith("/decode")


def pressed(group: Locator) -> list[bool]:
    return [value == "true" for value in group.evaluate_all("bs => bs.map(b => b.getAttribute('aria-pressed'))")]


# --- tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [JOINT, INFOGAN])
def test_each_categorical_part_is_a_picker_of_class_thumbnails(page: Page, url: str, model: str) -> None:
    info = show(page, url, model)
    layout = info["layout"]
    assert layout["categorical"], "the smoke models have categorical parts"
    expect(page.locator("#classes fieldset")).to_have_count(len(layout["categorical"]))
    for part in layout["categorical"]:
        group = buttons(page, part["name"])
        expect(group).to_have_count(part["classes"])
        expect(group.first).to_have_accessible_name(re.compile(r"^class 0\b"))
        wait_until(lambda group=group: thumbnails_loaded(group), f"a thumbnail on each class of {part['name']}")
        assert pressed(group) == [k == 0 for k in range(part["classes"])], "a part starts at class 0"
    # Continuous codes stay sliders; a GAN's noise gets sliders of its own, folded away.
    expect(page.locator("#sliders input[type=range]")).to_have_count(layout["continuous"])
    noise = page.locator("#noise-details")
    expect(noise).to_be_visible() if layout["noise"] else expect(noise).to_be_hidden()
    expect(page.locator("#noise input[type=range]")).to_have_count(layout["noise"])


@pytest.mark.parametrize("model", [JOINT, INFOGAN])
def test_picking_a_class_decodes_it_and_shows_what_its_thumbnail_showed(
    page: Page, url: str, http: httpx.Client, model: str
) -> None:
    info = show(page, url, model)
    part = info["layout"]["categorical"][0]
    group = buttons(page, part["name"])
    wait_until(lambda: thumbnails_loaded(group), "the class thumbnails")
    before = pixels_of(src(page.locator("#decoded")))
    thumbnails = [pixels_of(src(img)) for img in group.locator("img").all()]
    changed = [k for k, t in enumerate(thumbnails) if np.abs(t - before).max() > 1]
    assert changed, "some class must decode to another picture than class 0"
    k = changed[-1]

    with page.expect_response(is_decode) as answer:
        group.nth(k).click()
    body = sent_json(answer.value)
    assert body["categorical"] == {part["name"]: [k]}
    noise = info["layout"]["noise"]
    assert len(body["latents"][0]) == info["layout"]["continuous"] + noise
    assert body["latents"][0][len(body["latents"][0]) - noise :] == [0] * noise, "noise starts at its prior mean"
    assert pressed(group) == [j == k for j in range(part["classes"])]
    expected = decoded(http, body)
    assert np.abs(expected - thumbnails[k]).max() <= 1, "the button shows what picking it decodes"
    wait_until(lambda: np.abs(pixels_of(src(page.locator("#decoded"))) - expected).max() <= 1, f"class {k} decoded")
    # The page offers the same body as JSON to copy.
    wait_until(lambda: json.loads(page.locator("#latent-json").input_value()) == body, "the picked class as JSON")


def test_the_thumbnails_follow_the_continuous_codes_and_the_noise(page: Page, url: str, http: httpx.Client) -> None:
    info = show(page, url, INFOGAN)
    layout = info["layout"]
    group = buttons(page, layout["categorical"][0]["name"])
    wait_until(lambda: thumbnails_loaded(group), "the class thumbnails")
    before = pixels_of(src(group.first.locator("img")))
    page.locator("#noise-details summary").click()
    moved: dict[int, float] = {}
    for selector, offset in (("#sliders input[type=range]", 0), ("#noise input[type=range]", layout["continuous"])):
        slider = page.locator(selector).first
        slider.focus()
        for _ in range(20):
            slider.press("ArrowRight")
        moved[offset + int(slider.get_attribute("data-dim") or "")] = float(slider.input_value())

    def shown_body() -> dict[str, Any]:
        body: dict[str, Any] = json.loads(page.locator("#latent-json").input_value())
        return body

    wait_until(lambda: all(shown_body()["latents"][0][j] == v for j, v in moved.items()), "the moved latent")
    body = shown_body()
    expected = decoded(http, body)
    assert np.abs(expected - before).max() > 1, "moving a code and a noise dim must change the picture"

    def thumbnail_matches() -> bool:
        return np.abs(pixels_of(src(group.first.locator("img"))) - expected).max() <= 1

    # Class 0 is the chosen one: its thumbnail is the decoded picture, redrawn for the moved values.
    wait_until(thumbnail_matches, "the class 0 thumbnail of the moved latent")


def test_the_picker_works_from_the_keyboard(page: Page, url: str) -> None:
    info = show(page, url, INFOGAN)
    part = info["layout"]["categorical"][0]
    group = buttons(page, part["name"])
    group.first.focus()
    group.first.press("ArrowRight")
    expect(group.nth(1)).to_be_focused()
    group.nth(1).press("End")
    expect(group.last).to_be_focused()
    group.last.press("ArrowLeft")
    expect(group.nth(part["classes"] - 2)).to_be_focused()
    with page.expect_response(is_decode) as answer:
        page.keyboard.press("Enter")
    assert sent_json(answer.value)["categorical"] == {part["name"]: [part["classes"] - 2]}
    expect(group.nth(part["classes"] - 2)).to_have_attribute("aria-pressed", "true")
    expect(group.first).to_have_attribute("aria-pressed", "false")


def test_an_upload_sets_the_picker_to_its_most_probable_class(page: Page, url: str, http: httpx.Client) -> None:
    info = show(page, url, JOINT)
    part = info["layout"]["categorical"][0]["name"]
    picture = png(DSprites().render(np.array([HEART]))[0, 0])
    encoded = http.post("/encode", files={"images": ("heart.png", picture, "image/png")}, data={"model": JOINT})
    assert encoded.status_code == 200, encoded.text
    probabilities = encoded.json()["probabilities"][part][0]
    k = int(np.argmax(probabilities))

    with page.expect_response(is_decode) as answer:
        page.get_by_label("Encode an image").set_input_files(
            FilePayload(name="heart.png", mimeType="image/png", buffer=picture)
        )
    expect(page.get_by_role("status")).to_contain_text("the pickers its most probable classes")
    group = buttons(page, part)
    expect(group.nth(k)).to_have_attribute("aria-pressed", "true")
    assert sent_json(answer.value)["categorical"] == {part: [k]}
    shares = group.locator(".share").all_text_contents()
    assert shares == [f"{int(np.floor(100 * p + 0.5))}%" for p in probabilities], "each class shows its probability"
    expect(page.locator("#classes .note")).to_have_text(
        f"The uploaded image: class {k} at {int(np.floor(100 * probabilities[k] + 0.5))}%."
    )
    assert sent_json(answer.value)["latents"][0] == pytest.approx(encoded.json()["mu"][0], abs=1e-5)


def test_a_continuous_only_model_shows_sliders_alone(page: Page, url: str) -> None:
    info = show(page, url, CONTINUOUS)
    assert not info["layout"]["categorical"] and not info["layout"]["noise"]
    expect(page.locator("#classes")).to_be_hidden()
    expect(page.locator("#classes button")).to_have_count(0)
    expect(page.locator("#noise-details")).to_be_hidden()
    expect(page.locator("#sliders input[type=range]")).to_have_count(info["latent_dim"])
    expect(page.locator("#explorer-title")).to_have_text(f"{CONTINUOUS}: {info['latent_dim']} latent dimensions")
    with page.expect_response(is_decode) as answer:
        page.get_by_role("button", name="Random sample").click()
    body = sent_json(answer.value)
    assert set(body) == {"model", "latents"} and len(body["latents"][0]) == info["latent_dim"]


def test_a_digit_chosen_in_the_factor_panel_is_synthesised(page: Page, url: str, http: httpx.Client) -> None:
    show(page, url, CONTINUOUS)
    panel = page.locator("#factors-panel")
    expect(panel).to_be_visible()
    digit = panel.get_by_label("digit", exact=True)
    # A list of the digits, not a slider that would ask for a 6.93.
    expect(digit.locator("option")).to_have_text([str(d) for d in range(10)])

    def asks_for_a_seven(response: Response) -> bool:
        return response.url.endswith("/synthesize") and sent_json(response)["factors"].get("digit") == 7

    with page.expect_response(asks_for_a_seven) as answer:
        digit.select_option("7")
    sent = sent_json(answer.value)
    assert sent["model"] == CONTINUOUS and sent["factors"]["digit"] == 7 and isinstance(sent["factors"]["digit"], int)
    reference = http.post("/synthesize", json=sent)
    assert reference.status_code == 200, reference.text
    expected = pixels_of("data:image/png;base64," + reference.json()["image"])
    synthesized = page.locator("#synthesized")
    wait_until(lambda: np.abs(pixels_of(src(synthesized)) - expected).max() <= 1, "the synthesised 7")


def test_the_factor_panel_names_the_class_and_hands_it_to_the_picker(page: Page, url: str, http: httpx.Client) -> None:
    info = show(page, url, JOINT)
    names = [f["name"] for f in info["calibration"]["factors"]]
    calibration = info["calibration"]["factors"][names.index("shape")]
    part = calibration["part"]
    assert part == "shape", "the smoke JointVAE's part is named after the factor it carries"
    k = calibration["classes"][calibration["values"].index("heart")]
    panel = page.locator("#factors-panel")

    def asks_for_a_heart(response: Response) -> bool:
        return response.url.endswith("/synthesize") and sent_json(response)["factors"].get("shape") == "heart"

    with page.expect_response(asks_for_a_heart):
        panel.get_by_label("shape", exact=True).select_option("heart")
    expect(panel.locator(f"output[for=factor-{names.index('shape')}]")).to_have_text(f"shape class {k}")
    # The picker names the values the calibration put on each class.
    expect(buttons(page, part).nth(k)).to_have_accessible_name(re.compile(rf"^class {k}: shape .*heart"))
    group = buttons(page, part)

    edit = page.get_by_role("button", name="Edit in the sliders")
    expect(edit).to_be_enabled()
    synthesized = pixels_of(src(page.locator("#synthesized")))
    with page.expect_response(is_decode) as answer:
        edit.click()
    assert sent_json(answer.value)["categorical"] == {part: [k]}
    expect(group.nth(k)).to_have_attribute("aria-pressed", "true")
    wait_until(lambda: np.abs(pixels_of(src(page.locator("#decoded"))) - synthesized).max() <= 1, "the heart decoded")


def test_the_picker_on_a_shipped_model_is_pictured(page: Page, url: str) -> None:
    info = show(page, url, PICTURED)
    group = buttons(page, info["layout"]["categorical"][0]["name"])
    wait_until(lambda: thumbnails_loaded(group), "the class thumbnails")
    seven = png(Digits().render(np.array([SEVEN]))[0, 0])
    with page.expect_response(lambda r: r.url.endswith("/traverse") and sent_json(r).get("part") is not None):
        page.get_by_label("Encode an image").set_input_files(
            FilePayload(name="seven.png", mimeType="image/png", buffer=seven)
        )
    expect(page.get_by_role("status")).to_contain_text("Encoded seven.png")
    expect(group.and_(page.locator("[aria-pressed=true]"))).to_have_count(1)
    wait_until(lambda: thumbnails_loaded(group), "the class thumbnails of the encoded latent")
    expect(page.locator("#frames img").last).to_have_attribute("src", PNG_DATA_URL)
    shot = page.screenshot()
    for target in (REPO / "test-artifacts" / "page-picker.png", REPO / "docs" / "images" / "page-picker.png"):
        if target.parent.name == "images" and target.exists():
            continue  # the docs' picture is written once and committed
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(shot)
