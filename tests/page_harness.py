"""Helpers for the browser tests of the page: Debian's chromium driven by Playwright, and reading what it shows.

Not a test module: test_page.py and test_page_classes.py import it, each starting the server it needs.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, ViewportSize, expect, sync_playwright
from service_harness import REPO
from service_harness import wait_until as waited_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_S = 15.0  # for a busy CI machine; every wait ends as soon as the page gets there
PNG_DATA_URL = re.compile(r"^data:image/png;base64,")


def chromium() -> Path | None:
    """The browser, installed with apt-get on first use where the machine allows it."""
    if not CHROMIUM.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "install-test-tools.sh")], check=False)
    return CHROMIUM if CHROMIUM.exists() else None


@contextmanager
def launched(chromium_path: Path) -> Iterator[Browser]:
    """Debian's chromium, headless, with the flags that keep it off the network."""
    expect.set_options(timeout=WAIT_S * 1000)
    with sync_playwright() as playwright:
        yield playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)


@contextmanager
def tab_without_errors(browser: Browser, viewport: ViewportSize) -> Iterator[Page]:
    """A fresh tab in a fresh context (no stored key); fails on any script error the page raised."""
    context = browser.new_context(viewport=viewport)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: console_error(message, errors))
    yield tab
    context.close()
    assert errors == []


def console_error(message: ConsoleMessage, errors: list[str]) -> None:
    # The browser logs every failed request as a console error; the page shows those itself.
    if message.type == "error" and "Failed to load resource" not in message.text:
        errors.append(message.text)


def pixels_of(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))), dtype=np.int16)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    waited_until(condition, f"the page show {what}", WAIT_S)


def sent_json(response: Response) -> dict[str, Any]:
    body = response.request.post_data_json
    assert isinstance(body, dict), response.request.post_data
    return body
