"""The page reads each model's prior from its manifest (through /models): the sliders span its ranges and
"Random sample" draws from it. In Debian's chromium on a real server serving the shipped InfoGAN (U(-1, 1)
codes) and a copy of dsprites_vae whose manifest says its codes are U(0.25, 0.75): the page must follow
the manifest, not the objective's name."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from page_harness import sent_json, tab_without_errors
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Page, ViewportSize, expect
from service_harness import GAN, REPO, copy_artifact, priors_folder, serve

from training.data import get_dataset

ODD = "vae_uniform"
ODD_PRIOR = {"kind": "uniform", "low": 0.25, "high": 0.75}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = priors_folder(tmp_path_factory.mktemp("page_priors"))

    def uniform(manifest: dict[str, object]) -> None:
        manifest.update(schema_version=2, layout={"continuous": manifest["latent_dim"], "prior": ODD_PRIOR})

    copy_artifact(REPO / "models" / "dsprites_vae", folder, ODD, uniform)
    with serve(folder) as base:
        yield base


@pytest.fixture
def page(browser: Browser, url: str) -> Iterator[Page]:
    with tab_without_errors(browser, ViewportSize(width=1280, height=900)) as tab:
        tab.goto(url)
        expect(tab.locator("main")).to_be_visible()
        yield tab


def choose(page: Page, model: str) -> None:
    page.get_by_label("Model", exact=True).select_option(model)
    expect(page.locator("#model")).to_have_value(model)


def spans(page: Page, container: str) -> list[tuple[float, float]]:
    return [
        (float(low), float(high))
        for low, high in page.eval_on_selector_all(
            f"{container} input[type=range]", "inputs => inputs.map(i => [i.min, i.max])"
        )
    ]


def random_draw(page: Page) -> list[float]:
    """Press "Random sample"; the latent's continuous and noise values the page sends /decode."""
    with page.expect_response(lambda r: r.url.endswith("/decode")) as decoded:
        page.get_by_role("button", name="Random sample").click()
    assert decoded.value.status == 200
    (latent,) = sent_json(decoded.value)["latents"]
    return [float(v) for v in latent]


def test_infogans_sliders_span_its_prior_and_its_draws_stay_inside(page: Page) -> None:
    choose(page, GAN)
    expect(page.locator("#sliders input[type=range]")).to_have_count(5)
    assert spans(page, "#sliders") == [(-1.0, 1.0)] * 5
    assert spans(page, "#noise") == [(-3.0, 3.0)] * 32  # the noise stays N(0, 1)
    for _ in range(3):
        codes = random_draw(page)[:5]
        assert all(-1.0 <= v <= 1.0 for v in codes), codes


def test_the_page_follows_the_manifests_prior_not_the_objective(page: Page) -> None:
    choose(page, ODD)
    expect(page.locator("#sliders input[type=range]")).to_have_count(10)
    assert spans(page, "#sliders") == [(0.25, 0.75)] * 10
    drawn = [v for _ in range(3) for v in random_draw(page)]
    assert all(0.25 <= v <= 0.75 for v in drawn), drawn
    assert len(set(drawn)) == len(drawn)  # drawn, not the sliders' ends


def test_an_uploaded_digit_shows_the_latent_the_service_reconstructs_from(page: Page, url: str) -> None:
    """The page shows /encode's reconstruction latent as it is: Q's codes past the prior widen their sliders,
    the part takes its most probable class, the noise its mean."""
    pictures = []
    for image in get_dataset("digits").images(np.arange(64))[:, 0]:  # (64, H, W)
        buffer = io.BytesIO()
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, "PNG")
        pictures.append(buffer.getvalue())
    files = [("images", (f"{i}.png", picture)) for i, picture in enumerate(pictures)]
    encoded = httpx.post(f"{url}/encode", files=files, data={"model": GAN}).json()
    farthest = int(np.argmax(np.abs(np.asarray(encoded["mu"])).max(axis=1)))  # a digit Q reads past the prior
    picture, latent = pictures[farthest], encoded["latent"][farthest]
    assert max(abs(v) for v in latent[:5]) > 1.0
    choose(page, GAN)
    page.get_by_label("Encode an image").set_input_files(
        FilePayload(name="digit.png", mimeType="image/png", buffer=picture)
    )
    expect(page.get_by_role("status")).to_contain_text("Encoded digit.png")
    shown = page.eval_on_selector_all(
        "#sliders input[type=range]", "inputs => inputs.map(i => [Number(i.dataset.dim), Number(i.value)])"
    )
    assert [value for _, value in sorted(shown)] == pytest.approx(latent[:5], abs=1e-6)
    noise = page.eval_on_selector_all("#noise input[type=range]", "inputs => inputs.map(i => Number(i.value))")
    assert noise == [0.0] * 32
