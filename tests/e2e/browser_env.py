"""Where the browser tests find Chromium, node and the driver scripts, and the markers that skip them
(with the install command) when CI has not installed those."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
NODE = shutil.which("node")

needs_browser = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(NODE is None or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(),
                       reason="playwright-core is not installed (npm ci --prefix tests/e2e/browser)"),
]
"""``pytestmark`` entries (or decorators) of a test that drives Chromium through playwright-core."""
