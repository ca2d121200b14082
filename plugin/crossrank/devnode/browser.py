"""Headless Chromium from the system's packages (Debian: chromium, chromium-driver), driven by
selenium, for the page's browser tests and its screenshots. Nothing is downloaded: the browser
and its driver are the system's, and selenium is told where they are."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

_BROWSERS = ("chromium", "chromium-browser", "/usr/lib/chromium/chromium")
_DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
# Without the networking switches Chromium keeps trying to reach Google's hosts, which a closed
# network refuses; --no-sandbox because CI runs as root.
_SWITCHES = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars")


def _find(names: tuple[str, ...], variable: str) -> str | None:
    given = os.environ.get(variable)
    if given:
        return given
    for name in names:
        found = shutil.which(name) or (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, from CROSSRANK_CHROMIUM / CROSSRANK_CHROMEDRIVER or PATH."""
    browser = _find(_BROWSERS, "CROSSRANK_CHROMIUM")
    driver = _find(_DRIVERS, "CROSSRANK_CHROMEDRIVER")
    return (browser, driver) if browser and driver else None


def headless_chromium(width: int = 1280, height: int = 900) -> Chrome:
    """A new headless Chromium with a fresh profile; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("Chromium and ChromeDriver are not installed "
                           "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for switch in _SWITCHES:
        options.add_argument(switch)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='crossrank-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(found[1]), options=options)
