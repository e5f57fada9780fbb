"""Fixtures shared by the browser tests."""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from stages.render.browser import find_chromium
from stages.verify import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (the tool's own finder and flags), one per test module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium("", playwright.chromium.executable_path), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
