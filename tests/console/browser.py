"""Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver (no browser is
downloaded), and the accessibility checks the console's pages must pass: every field labelled,
every text readable against its background (WCAG AA contrast), every control reachable by Tab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1366,900",
)


def chromium() -> WebDriver:
    """A fresh headless Chromium, or a loud skip (a failure under CI=true) when missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        reason = (
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(make test does, as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def wait_for(driver: WebDriver, script: str, timeout_s: float = 20.0) -> Any:
    """Wait until `script` (a JS expression) is truthy in the page; its value."""
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {script};")
    )


HERE = Path(__file__).parent
AUDIT_JS = (HERE / "a11y.js").read_text()
FOCUSABLE_JS = (HERE / "focusable.js").read_text()


def accessibility_problems(driver: WebDriver) -> list[str]:
    """What the current page gets wrong: unlabelled fields, nameless buttons and links, low
    contrast, and controls that Tab, pressed from the top of the page, does not reach."""
    found = driver.execute_script(AUDIT_JS)
    problems: list[str] = list(found["problems"])
    assert found["checked"] > 0, "the contrast check saw no text"
    targets = driver.execute_script(FOCUSABLE_JS)
    driver.execute_script("document.activeElement && document.activeElement.blur();")
    reached = []
    keys = ActionChains(driver)
    for _ in range(6 * len(targets) + 6):  # a date field holds several stops of its own
        keys.send_keys(Keys.TAB).perform()
        reached.append(driver.switch_to.active_element)
        if all(target in reached for target in targets):
            break
    for target in targets:
        if target not in reached:
            problems.append(f"not reachable by Tab: {target.get_attribute('outerHTML')[:80]}")
    return problems
