"""The latent explorer page in a real browser (Debian's chromium, driven by Playwright) on a real server.

The server asks for an API key and serves two copies of the smoke model; one gets a factor calibration
computed by ``training.calibrate`` from the model's own encodings of dSprites renders, for the named-factor
panel. Screenshots go to test-artifacts/page.png, and to docs/page.png when that one is missing.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from page_harness import (
    PNG_DATA_URL,
    pixels_of,
    sent_json,
    tab_without_errors,
    wait_until,
)
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Page, Request, Response, Route, ViewportSize, expect
from service_harness import REPO, copy_artifact, serve

from training.data.dsprites import DSprites
from training.evaluate.calibrate import calibrate

KEY = "page-test-key"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=380, height=800)
CALIBRATION_SAMPLES = 2000  # covers each of dSprites' 40 orientations and 32 positions many times over

# dSprites factor classes: heart, largest scale, orientation 0, left of centre, low
HEART = [2, 5, 0, 8, 24]


def dsprites_png(classes: list[int]) -> bytes:
    pixels = DSprites().render(np.array([classes]))[0, 0]  # (64, 64) in {0, 1}
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def real_calibration(artifact: Path) -> dict[str, Any]:
    """The calibration training computes: dims and codes from the encoder's means on random renders."""
    dsprites = DSprites()
    classes = dsprites.sample_factors(CALIBRATION_SAMPLES, np.random.default_rng(0))
    encoder = onnxruntime.InferenceSession(str(artifact / "encoder.onnx"), providers=["CPUExecutionProvider"])
    images = dsprites.render(classes)
    mu = np.concatenate([encoder.run(["mu"], {"image": batch})[0] for batch in np.array_split(images, 8)])
    # Every factor gets dims, even one the small model barely carries, so the whole panel can be exercised.
    return calibrate(mu, classes, dsprites.info().factors, min_information=0.0).model_dump()


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("page") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    calibration = real_calibration(smoke_artifact)
    copy_artifact(smoke_artifact, root, "smoke-calibrated", lambda m: m.update(calibration=calibration))
    with serve(root, api_key=KEY) as base:
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (no stored key); the test fails on any script error the page raises."""
    with tab_without_errors(browser, DESKTOP) as tab:
        yield tab


def connect(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("API key").fill(KEY)
    page.get_by_label("API key").press("Enter")
    expect(page.locator("main")).to_be_visible()
    expect(page.locator("#decoded")).to_have_attribute("src", PNG_DATA_URL)


def upload(page: Page, name: str, mime_type: str, data: bytes) -> None:
    page.get_by_label("Encode an image").set_input_files(FilePayload(name=name, mimeType=mime_type, buffer=data))


def sent_model(request: Request) -> str:
    """The model field of a multipart /encode request the page sent."""
    found = re.search(rb'name="model"\r\n\r\n([^\r]*)\r\n', request.post_data_buffer or b"")
    assert found is not None, request.post_data_buffer
    return found.group(1).decode()


def sliders_latent(page: Page) -> list[float]:
    """The latent the sliders show, in dimension order."""
    values = page.eval_on_selector_all(
        "#sliders input[type=range]", "inputs => inputs.map(i => [Number(i.dataset.dim), Number(i.value)])"
    )
    return [value for _, value in sorted(values)]


def decoded_pixels(http: httpx.Client, model: str, latent: list[float]) -> np.ndarray:
    answer = http.post("/decode", json={"model": model, "latents": [latent]})
    assert answer.status_code == 200, answer.text
    return pixels_of("data:image/png;base64," + answer.json()["images"][0])


def save_screenshot(page: Page) -> None:
    shot = page.screenshot(full_page=True)
    for target in (REPO / "test-artifacts" / "page.png", REPO / "docs" / "page.png"):
        if target.parent.name == "docs" and target.exists():
            continue  # the README's picture is written once and committed
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(shot)


# --- tests ----------------------------------------------------------------------------------------------


def test_page_lists_the_models_and_shows_the_card(page: Page, url: str, smoke_artifact: Path) -> None:
    connect(page, url)
    models = page.get_by_label("Model", exact=True)
    expect(models.locator("option")).to_have_text(["smoke", "smoke-calibrated"])
    expect(models).to_have_value("smoke")
    manifest = json.loads((smoke_artifact / "manifest.json").read_text())
    card = page.locator("#card")
    expect(card).to_contain_text("Objective")
    expect(card).to_contain_text({"vae": "VAE"}.get(manifest["objective"], manifest["objective"]))
    expect(card).to_contain_text("dsprites, 737,280 images")
    expect(card.get_by_role("table", name="Metrics")).to_be_visible()
    for metric in manifest["metrics"]:
        expect(card).to_contain_text(metric)
    # One labelled slider per latent dimension, the most informative first.
    sliders = page.locator("#sliders input[type=range]")
    expect(sliders).to_have_count(manifest["latent_dim"])
    top = max(manifest["latent_stats"], key=lambda s: s["kl"])["index"]
    expect(sliders.first).to_have_attribute("data-dim", str(top))
    expect(page.get_by_role("slider", name=re.compile(rf"^z{top}\b"))).to_have_attribute("data-dim", str(top))
    expect(page.locator("#factors-panel")).to_be_hidden()


def test_a_missing_or_wrong_key_shows_the_service_error(page: Page, url: str) -> None:
    page.goto(url)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("401")
    expect(alert).to_contain_text("Authorization: expected a 'Bearer <api key>' header, received none")
    expect(page.locator("main")).to_be_hidden()
    expect(page.get_by_label("API key")).to_be_focused()

    page.get_by_label("API key").fill("not-the-key")
    page.get_by_label("API key").press("Enter")
    expect(alert).to_contain_text("expected the service's API key, received a different key")

    page.get_by_label("API key").fill(KEY)
    page.get_by_label("API key").press("Enter")
    expect(page.locator("main")).to_be_visible()
    expect(alert).to_have_text("")


def test_arrow_keys_move_a_slider_and_the_decoded_image_follows(page: Page, url: str, http: httpx.Client) -> None:
    connect(page, url)
    image = page.locator("#decoded")
    before_src = image.get_attribute("src") or ""
    before = sliders_latent(page)
    slider = page.locator("#sliders input[type=range]").first
    dim = int(slider.get_attribute("data-dim") or "")
    slider.focus()
    for _ in range(25):
        slider.press("ArrowRight")

    after = sliders_latent(page)
    assert after[dim] > before[dim]
    assert [v for j, v in enumerate(after) if j != dim] == [v for j, v in enumerate(before) if j != dim]
    expected = decoded_pixels(http, "smoke", after)
    assert np.abs(expected - pixels_of(before_src)).max() > 1, "the move must change the decoded image"

    def shows_the_moved_latent() -> bool:
        src = image.get_attribute("src") or ""
        return src != before_src and np.abs(pixels_of(src) - expected).max() <= 1

    wait_until(shows_the_moved_latent, "the image decoded from the moved slider")
    expect(page.locator(f"output[for=z-{dim}]")).to_have_text(f"{after[dim]:.2f}")


def test_a_traversal_frame_sets_its_dimension(page: Page, url: str) -> None:
    connect(page, url)
    slider = page.locator("#sliders input[type=range]").first
    dim = slider.get_attribute("data-dim")
    expect(page.get_by_label("Dimension", exact=True)).to_have_value(dim or "")
    last = page.locator("#frames button").last
    expect(last.get_by_role("img")).to_have_attribute("src", PNG_DATA_URL)
    last.click()
    # The service computes the frame's value in float32: equal to the slider's max up to that precision.
    top = float(slider.get_attribute("max") or "nan")
    wait_until(lambda: abs(float(slider.input_value()) - top) <= 1e-6 * max(1.0, abs(top)), f"z{dim} at its max")
    expect(last).to_be_focused()


def test_the_latent_is_offered_as_json_and_as_a_curl_command_that_works(page: Page, url: str, tmp_path: Path) -> None:
    connect(page, url)
    slider = page.locator("#sliders input[type=range]").first
    slider.focus()
    slider.press("ArrowRight")
    latent = sliders_latent(page)

    def json_shows_the_latent() -> bool:
        body = json.loads(page.locator("#latent-json").input_value() or "{}")
        return body.get("model") == "smoke" and body.get("latents") == [pytest.approx(latent, abs=1e-9)]

    wait_until(json_shows_the_latent, "the moved latent as JSON")
    command = page.locator("#latent-curl").input_value()
    assert "$DISENTANGLE_API_KEY" in command and KEY not in command, "the key must not land in the text"
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "DISENTANGLE_API_KEY": KEY}, timeout=30
    )
    assert done.returncode == 0
    pasted = np.asarray(Image.open(tmp_path / "decoded.png"), dtype=np.int16)
    shown = pixels_of(page.locator("#decoded").get_attribute("src") or ",")
    assert np.abs(pasted - shown).max() <= 1, "the curl command decodes what the page shows"


def test_an_uploaded_png_moves_the_sliders_to_its_latent(page: Page, url: str, http: httpx.Client) -> None:
    connect(page, url)
    picture = dsprites_png(HEART)
    encoded = http.post("/encode", files={"images": ("heart.png", picture, "image/png")}, data={"model": "smoke"})
    assert encoded.status_code == 200, encoded.text
    mu = encoded.json()["mu"][0]

    upload(page, "heart.png", "image/png", picture)
    expect(page.get_by_role("status")).to_contain_text("Encoded heart.png")
    assert sliders_latent(page) == pytest.approx(mu, abs=1e-5)
    expect(page.locator("#uploaded-figure")).to_be_visible()
    expected = decoded_pixels(http, "smoke", mu)
    wait_until(
        lambda: np.abs(pixels_of(page.locator("#decoded").get_attribute("src") or ",") - expected).max() <= 1,
        "the decoded latent of the upload",
    )


def test_an_upload_that_is_not_an_image_shows_why(page: Page, url: str) -> None:
    connect(page, url)
    upload(page, "notes.txt", "text/plain", b"not a picture")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("422")
    expect(alert).to_contain_text("images[0]: expected a PNG or JPEG image, received 13 bytes that are not one")


def test_an_upload_made_while_another_model_loads_is_encoded_by_that_model(page: Page, url: str) -> None:
    connect(page, url)
    # Hold the chosen model's description back until the upload is on its way, as a slow network would.
    held: list[Route] = []
    page.route("**/models/smoke-calibrated", lambda route: held.append(route))
    with page.expect_request("**/models/smoke-calibrated"):
        page.get_by_label("Model", exact=True).select_option("smoke-calibrated")
    encodes: list[Request] = []
    page.on("request", lambda request: encodes.append(request) if request.url.endswith("/encode") else None)
    with page.expect_request("**/encode"):
        upload(page, "heart.png", "image/png", dsprites_png(HEART))
    held[0].continue_()

    expect(page.locator("#explorer-title")).to_contain_text("smoke-calibrated")
    expect(page.get_by_role("status")).to_contain_text("Encoded heart.png")
    expect(page.locator("#uploaded-figure")).to_be_visible()
    assert sent_model(encodes[-1]) == "smoke-calibrated"

    # The picture stays through later switches too, encoded by each model in turn.
    with page.expect_request("**/encode") as again:
        page.get_by_label("Model", exact=True).select_option("smoke")
    assert sent_model(again.value) == "smoke"
    expect(page.locator("#uploaded-figure")).to_be_visible()


def test_named_factors_synthesize_the_image(page: Page, url: str, http: httpx.Client) -> None:
    connect(page, url)
    page.get_by_label("Model", exact=True).select_option("smoke-calibrated")
    panel = page.locator("#factors-panel")
    expect(panel).to_be_visible()
    factors = http.get("/models/smoke-calibrated").json()["calibration"]["factors"]
    names = [f["name"] for f in factors]
    for factor in factors:
        control = panel.get_by_label(factor["name"], exact=True)
        # A factor that no dimension carries is shown, but cannot be set.
        expect(control).to_be_enabled() if factor["dims"] else expect(control).to_be_disabled()
    # Each slider is labelled with the factors the calibration says its dimension carries ("z3: posX").
    for factor in factors:
        for dim in factor["dims"]:
            expect(page.locator(f"label[for=z-{dim}]")).to_contain_text(factor["name"])

    def asks_for_a_heart(response: Response) -> bool:
        return response.url.endswith("/synthesize") and sent_json(response)["factors"].get("shape") == "heart"

    with page.expect_response(asks_for_a_heart) as answer:
        panel.get_by_label("shape", exact=True).select_option("heart")
    sent = sent_json(answer.value)
    assert sent["model"] == "smoke-calibrated" and set(sent["factors"]) == set(names)
    reference = http.post("/synthesize", json=sent).json()
    expected = pixels_of("data:image/png;base64," + reference["image"])
    synthesized = page.locator("#synthesized")
    wait_until(
        lambda: np.abs(pixels_of(synthesized.get_attribute("src") or ",") - expected).max() <= 1,
        "the synthesised heart",
    )

    # Leaving a factor out sends it no more.
    with page.expect_response(lambda r: r.url.endswith("/synthesize")) as answer:
        panel.get_by_label("set posX").uncheck()
    without_pos_x = sent_json(answer.value)
    assert "posX" not in without_pos_x["factors"]

    edit = page.get_by_role("button", name="Edit in the sliders")
    expect(edit).to_be_enabled()  # once the picture without posX is in
    edit.click()
    latent = http.post("/synthesize", json=without_pos_x).json()["latent"]
    wait_until(lambda: sliders_latent(page) == pytest.approx(latent, abs=1e-5), "the synthesised latent")


def test_the_page_fits_a_phone_and_is_pictured(browser: Browser, url: str) -> None:
    context = browser.new_context(viewport=PHONE)
    phone = context.new_page()
    connect(phone, url)
    width = phone.evaluate("document.documentElement.scrollWidth")
    context.close()
    assert width <= PHONE["width"]

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    connect(page, url)
    page.get_by_label("Model", exact=True).select_option("smoke-calibrated")
    upload(page, "heart.png", "image/png", dsprites_png(HEART))
    expect(page.get_by_role("status")).to_contain_text("Encoded heart.png")
    expect(page.locator("#frames img").last).to_have_attribute("src", PNG_DATA_URL)
    expect(page.locator("#synthesized")).to_have_attribute("src", PNG_DATA_URL)
    page.get_by_label("API key").blur()  # no focus ring in the README's picture
    save_screenshot(page)
    context.close()


def test_the_page_runs_under_its_content_security_policy(page: Page, url: str) -> None:
    # The page fixture fails on any console error, and a blocked script, style or picture is one.
    answer = page.goto(url)
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    connect(page, url)  # models listed, the decoded picture shown as a data: URL


@pytest.mark.parametrize(("path", "shown"), [("/docs", "/synthesize"), ("/redoc", "/synthesize")])
def test_the_api_docs_render_offline_from_this_service_alone(page: Page, url: str, path: str, shown: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url + path)
    expect(page.get_by_text(shown, exact=True).first).to_be_visible()
    assert requested and all(address.startswith(url) or address.startswith(("data:", "blob:")) for address in requested)
