"""The console in a real headless Chromium (Debian's, through Selenium and chromedriver): log in,
watch a replica go when its backend is stopped, make and revoke a key, see usage appear after
requests through the gateway, open a plan; each page passes the accessibility checks, and a
screenshot of each is kept in the test's tmp dir."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openai import OpenAI
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.browser import accessibility_problems, chromium, wait_for
from tests.console.live import ADMIN_KEY, MODEL, Live, live
from tests.gateway.test_tenancy import new_key

AUTH_CACHE_S = 5.0  # llmhost.gateway.auth.Authenticator's default ttl_s


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    monkeypatch.setenv("LLMHOST_ADMIN_KEY", ADMIN_KEY)
    with live(tmp_path) as running:
        yield running


def log_in(driver: WebDriver, url: str, key: str = ADMIN_KEY) -> None:
    """Log in, and wait until the answer to the form has loaded (a busy machine is slow)."""
    driver.get(url + "/ui/login")
    form = driver.find_element(By.ID, "login")
    driver.find_element(By.ID, "key").send_keys(key)
    form.find_element(By.CSS_SELECTOR, "button").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the old page goes stale once the answer replaced it
        try:
            form.is_displayed()
        except StaleElementReferenceException:
            break
        time.sleep(0.1)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def cell(driver: WebDriver, model: str, field: str) -> str:
    row = driver.find_element(By.CSS_SELECTOR, f'#overview tr[data-model="{model}"]')
    return str(row.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]').text)


def shot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name}: an empty screenshot"
    return path


def refused_within(url: str, secret: str, timeout_s: float) -> bool:
    """Whether the gateway starts refusing `secret` within `timeout_s` (revocation reaches a
    gateway once its authentication cache entry expires)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = requests.get(
            url + "/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=5
        )
        if answer.status_code == 401:
            return True
        time.sleep(0.2)
    return False


def reload_until(driver: WebDriver, url: str, script: str, timeout_s: float = 20.0) -> None:
    """Open `url` until the JS expression `script` holds on the page (the audit log commits
    request records in the background, so they show up a moment after the answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        driver.get(url)
        if driver.execute_script(f"return {script};"):
            return
        assert time.monotonic() < deadline, f"{script} never held on {url}"
        time.sleep(0.2)


def assert_accessible(driver: WebDriver) -> None:
    problems = accessibility_problems(driver)
    assert not problems, "\n".join(problems)


def test_login_then_the_overview_follows_a_killed_replica_without_a_reload(
    browser: WebDriver, gateway: Live, tmp_path: Path
) -> None:
    browser.get(gateway.url + "/ui")
    assert browser.current_url.endswith("/ui/login")
    assert_accessible(browser)
    log_in(browser, gateway.url, "not-an-admin-key")
    assert "not an admin key" in browser.find_element(By.ID, "login-error").text
    log_in(browser, gateway.url)
    assert browser.current_url.endswith("/ui/overview")
    cookie = browser.get_cookie("llmhost_console")
    assert cookie is not None
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert cell(browser, MODEL, "ready") == "2"
    assert cell(browser, MODEL, "ejected") == "0"
    assert_accessible(browser)
    browser.execute_script("window.__same_page = true;")
    polled = int(wait_for(browser, "document.getElementById('overview').dataset.polled"))

    gateway.kill(0)
    ready = f"""#overview tr[data-model="{MODEL}"] [data-field="ready"]"""
    wait_for(browser, f"document.querySelector('{ready}').textContent === '1'")
    gone = int(cell(browser, MODEL, "ejected")) + int(cell(browser, MODEL, "down"))
    assert gone == 1
    assert browser.execute_script("return window.__same_page === true;"), "the page reloaded"
    assert (
        int(browser.execute_script("return document.getElementById('overview').dataset.polled"))
        > polled
    )
    shot(browser, tmp_path, "overview")


def test_a_key_made_in_the_console_is_shown_once_works_and_is_revoked(
    browser: WebDriver, gateway: Live, tmp_path: Path
) -> None:
    log_in(browser, gateway.url)
    browser.get(gateway.url + "/ui/keys")
    assert_accessible(browser)
    browser.find_element(By.ID, "tenant").send_keys("console-team")
    browser.find_element(By.ID, "rpm").send_keys("120")
    browser.find_element(By.ID, "monthly_tokens").send_keys("1,000,000")
    browser.find_element(By.CSS_SELECTOR, "#create-key button").click()
    # The form posts and the answer page comes back: wait for it, not the page before.
    wait_for(browser, "document.getElementById('new-secret') !== null")
    secret = browser.find_element(By.ID, "new-secret").text
    assert secret.startswith("llmh-")
    prefix = secret[: len("llmh-") + 10]
    row = browser.find_element(By.CSS_SELECTOR, f'#keys tr[data-prefix="{prefix}"]')
    assert "console-team" in row.text and "120" in row.text
    assert browser.page_source.count(secret) == 1
    budget = browser.find_element(By.CSS_SELECTOR, '#tenants tr[data-tenant="console-team"]')
    assert "1,000,000" in budget.text
    shot(browser, tmp_path, "keys")

    client = OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL]

    browser.get(gateway.url + "/ui/keys")  # the secret is gone for good
    assert secret not in browser.page_source
    assert not browser.find_elements(By.ID, "new-secret")

    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Revoke {prefix}"]').click()
    # The form posts and the page comes back: wait for the new page's row, not the old one's.
    state = f'#keys tr[data-prefix="{prefix}"] .state'
    wait_for(
        browser, f"document.querySelector('{state}')?.textContent.trim().startsWith('revoked')"
    )
    assert refused_within(gateway.url, secret, AUTH_CACHE_S + 5)

    browser.find_element(By.ID, "budget-tenant").send_keys("console-team")
    browser.find_element(By.ID, "budget-tokens").send_keys("5000")
    browser.find_element(By.CSS_SELECTOR, "#set-budget button").click()
    tenant = '#tenants tr[data-tenant="console-team"]'
    wait_for(browser, f"document.querySelector('{tenant}')?.textContent.includes('5,000')")

    browser.get(gateway.url + "/ui/audit?trail=admin")
    assert_accessible(browser)
    trail = browser.find_element(By.ID, "audit").text
    for action in ("key_created", "key_revoked", "budget_changed", "console_login"):
        assert action in trail, trail
    assert secret not in browser.page_source


def test_usage_and_savings_appear_after_requests_through_the_gateway(
    browser: WebDriver, gateway: Live, tmp_path: Path
) -> None:
    log_in(browser, gateway.url)
    browser.get(gateway.url + "/ui/usage")
    assert not browser.find_elements(By.CSS_SELECTOR, '#usage tr[data-tenant="acme"]')
    key = new_key(gateway.tmp_path, "acme")
    client = OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8
        )
    row_selector = f'#usage tr[data-tenant="acme"][data-model="{MODEL}"]'
    three = (
        f"(document.querySelector('{row_selector} td:nth-child(3)') || {{}}).textContent === '3'"
    )
    reload_until(browser, gateway.url + "/ui/usage?period=day&hourly_usd=0.5", three)
    wait_for(browser, "document.querySelector('#usage-chart svg rect') !== null")
    row = browser.find_element(By.CSS_SELECTOR, row_selector)
    assert row.find_element(By.CLASS_NAME, "prompt").text == "36"  # 3 x the stand-in's 12
    assert row.find_element(By.CLASS_NAME, "completion").text == "18"
    hosted = browser.find_element(By.ID, "hosted").text
    assert "together" in hosted, hosted  # the catalog's hosted price of llama-3.1-8b
    assert "This deployment over the same period" in browser.find_element(By.ID, "self-hosted").text
    wait_for(browser, "document.querySelectorAll('#cost-chart svg rect').length >= 2")
    labels = browser.find_element(By.ID, "cost-chart").text
    assert "this deployment" in labels and f"{MODEL}: together/" in labels
    assert_accessible(browser)
    shot(browser, tmp_path, "usage")

    session = requests.Session()
    for c in browser.get_cookies():
        session.cookies.set(c["name"], c["value"], path=c["path"])
    csv_text = session.get(gateway.url + "/ui/usage.csv?period=day", timeout=5).text
    lines = csv_text.splitlines()
    assert lines[0].startswith("tenant,model,requests")
    assert any(line.startswith(f"acme,{MODEL},3,0,36,18,") for line in lines), csv_text
    assert requests.get(gateway.url + "/ui/usage.csv", timeout=5).status_code == 401


def test_opening_a_plan_and_a_bench_result_shows_their_tables_and_charts(
    browser: WebDriver, gateway: Live, tmp_path: Path
) -> None:
    log_in(browser, gateway.url)
    browser.get(gateway.url + "/ui/plans")
    assert_accessible(browser)
    plan = tmp_path / "plan.json"
    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "plan",
            "llama-3.1-70b",
            "--gpu",
            "h100-80gb,l40s",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    plan.write_text(written.stdout)
    browser.find_element(By.ID, "plan-file").send_keys(str(plan))
    browser.find_element(By.CSS_SELECTOR, "#open-plan button").click()
    assert "llama-3.1-70b" in browser.find_element(By.ID, "plan-title").text
    assert browser.find_element(By.ID, "recommendation").text.startswith("Recommended:")
    rows = browser.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")
    assert len(rows) > 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#candidates tr.recommended")) >= 1
    wait_for(browser, "document.querySelectorAll('#plan-chart svg rect').length > 0")
    assert_accessible(browser)
    shot(browser, tmp_path, "plan")

    broken = tmp_path / "not-a-plan.json"
    broken.write_text('{"schema_version": 1, "candidates": []}')
    browser.find_element(By.ID, "plan-file").send_keys(str(broken))
    browser.find_element(By.CSS_SELECTOR, "#open-plan button").click()
    assert "schema version 1" in browser.find_element(By.ID, "plan-error").text

    # A bench result of this very gateway, written by `llmhost bench --out`.
    out = tmp_path / "bench"
    key = new_key(gateway.tmp_path, "bench")
    command = [sys.executable, "-m", "llmhost", "bench", gateway.url, "--model", MODEL]
    command += ["--api-key", key, "--sweep", "concurrency", "--max-concurrency", "2"]
    command += ["--requests", "4", "--out", str(out)]
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    browser.find_element(By.ID, "plan-file").send_keys(str(out / "results.json"))
    browser.find_element(By.CSS_SELECTOR, "#open-plan button").click()
    assert MODEL in browser.find_element(By.ID, "bench-title").text
    sweep = browser.find_elements(By.CSS_SELECTOR, "#sweep tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in sweep] == [
        "concurrency 1",
        "concurrency 2",
    ]
    assert [c.text for c in sweep[0].find_elements(By.TAG_NAME, "td")][1] == "4"  # all ok
    wait_for(browser, "document.querySelectorAll('#bench-throughput svg rect').length === 2")
    wait_for(browser, "document.querySelectorAll('#bench-ttft svg rect').length === 2")
    assert_accessible(browser)
    shot(browser, tmp_path, "bench")

    # The accessibility check itself catches what it is there to catch.
    browser.execute_script(
        """
        const field = document.createElement("input");
        const faint = document.createElement("p");
        faint.textContent = "faint text";
        faint.style.color = "#bbbbbb";
        const hidden = document.createElement("a");
        hidden.href = "#";
        hidden.textContent = "unreachable";
        hidden.style.visibility = "hidden";
        document.querySelector("main").append(field, faint, hidden);
        """
    )
    problems = "\n".join(accessibility_problems(browser))
    assert "no label: <input>" in problems
    assert "contrast" in problems and "faint text" in problems
    assert "not reachable by Tab: <a" in problems
