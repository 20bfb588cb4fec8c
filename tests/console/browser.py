"""Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver (no browser is
downloaded), and the accessibility checks the console's pages must pass: every field labelled,
every text readable against its background (WCAG AA contrast), every control reachable by Tab."""

from __future__ import annotations

import os
import shutil
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


def wait_for(driver: WebDriver, script: str, timeout_s: float = 10.0) -> Any:
    """Wait until `script` (a JS expression) is truthy in the page; its value."""
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {script};")
    )


# Fields without a label, and text below 4.5:1 (3:1 when large) against its background.
AUDIT_JS = r"""
const problems = [];
const visible = (el) => {
  const r = el.getBoundingClientRect();
  const s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
};
for (const el of document.querySelectorAll("input, select, textarea")) {
  if (el.type === "hidden") continue;
  const named = (el.labels && el.labels.length) || el.getAttribute("aria-label");
  if (!named) problems.push("no label: " + el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll("button, a[href]")) {
  const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
  if (!name) problems.push("no accessible name: " + el.outerHTML.slice(0, 80));
}
const rgb = (text) => {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) return c;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
let checked = 0;
for (const el of document.querySelectorAll("body *")) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(el)) continue;
  const style = getComputedStyle(el);
  const svg = el instanceof SVGElement;
  const fg = rgb(svg ? style.fill : style.color);
  if (!fg) continue;
  const bg = background(svg ? el.closest("div") || document.body : el);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  checked += 1;
  if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
}
return { problems, checked };
"""

FOCUSABLE_JS = r"""
const all = document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea");
return Array.from(all).filter((el) => !el.disabled && el.tabIndex >= 0 && !el.closest("[hidden]"));
"""


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
