"""A real browser for tests: Debian's headless Chromium driven through selenium.

`make test` installs the `chromium` and `chromium-driver` packages when they are missing (see the
Makefile's `browser` target); selenium is pointed at those binaries, never at a driver it would
download. `console_errors` returns what the page logged at SEVERE level (JavaScript errors, failed
requests), so a test can assert that a page opens cleanly.
"""

from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)


def _find(names: tuple[str, ...]) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"none of {names} is installed: run `make test` (it installs Debian's "
                       "chromium and chromium-driver) or apt-get install them")


def start_browser(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = _find(CHROMIUM_NAMES)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=_find(DRIVER_NAMES)))


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """SEVERE console entries since the last call (JavaScript errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
