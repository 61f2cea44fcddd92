"""`precsim ui` in a real browser: headless Chromium (Debian's chromium + chromium-driver,
installed by the README's test command) driven by Selenium. Each view is opened, a control
changed, and the displayed values must change and equal the CLI's `--json` for the same
inputs. A screenshot of each view is saved in tests/artifacts/ui/ (or $PRECSIM_UI_ARTIFACTS).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from precsim.codesign.cli import main

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("PRECSIM_UI_ARTIFACTS", ROOT / "tests" / "artifacts" / "ui"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TIMEOUT = 120  # generous: a shared 2-core CI machine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER),
                       reason="needs chromium and chromedriver on PATH (CI installs them: "
                              "apt-get install chromium chromium-driver)"),
]
webdriver = pytest.importorskip("selenium.webdriver")
By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys
StaleElementReferenceException = pytest.importorskip(
    "selenium.common.exceptions").StaleElementReferenceException


def cli_json(argv: list[str]) -> dict:
    """The CLI's --json output, run in-process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-m", "precsim.codesign.cli", "ui", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    address = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                urllib.request.urlopen(address, timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"precsim ui did not start: {proc.stdout.read()}")
                time.sleep(0.5)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.TemporaryDirectory(prefix="precsim-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
                 f"--user-data-dir={profile.name}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.chrome.service.Service(DRIVER))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    profile.cleanup()


def text_of(driver, id_: str, differs_from: str | None = None, contains: str = "") -> str:
    """textContent of #id_ once it is non-empty (and differs from `differs_from`, and
    contains `contains`)."""
    deadline, text = time.monotonic() + TIMEOUT, ""
    while time.monotonic() < deadline:
        try:
            found = driver.find_elements(By.ID, id_)
            text = found[0].get_attribute("textContent") if found else ""
        except StaleElementReferenceException:  # re-rendered between find and read
            continue
        if text and text != differs_from and contains in text:
            return text
        time.sleep(0.3)
    raise AssertionError(f"#{id_} did not show {'new ' if differs_from else ''}content "
                         f"{contains!r}; last: {text[:300]!r}")


def page_json(driver, id_: str, differs_from: str | None = None) -> tuple[dict, str]:
    text = text_of(driver, id_, differs_from)
    return json.loads(text), text


def set_input(driver, css: str, value: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, css)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(value, Keys.ENTER)


def shot(driver, name: str) -> None:
    path = ARTIFACTS / f"ui_{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")


def open_tab(driver, url: str, key: str) -> None:
    driver.get(url)
    text_of(driver, f"tab-{key}")  # rendered
    driver.find_element(By.ID, f"tab-{key}").click()


def without_timing(plan: dict) -> dict:
    return {k: v for k, v in plan.items() if k != "elapsed_s"}


def test_simulate_view(url, browser):
    browser.get(url)
    first, text = page_json(browser, "sim-json")
    argv = ["simulate", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant",
            "W4A16-g128", "--batch", "1", "--prompt", "512", "--gen", "128", "--json"]
    assert first == cli_json(argv)
    ttft_before = text_of(browser, "sim-totals")
    set_input(browser, "#sim-batch", "8")
    second, _ = page_json(browser, "sim-json", differs_from=text)
    assert second["request"]["batch"] == 8
    assert second == cli_json([a if a != "1" else "8" for a in argv])
    assert second["totals"]["ttft_s"] != first["totals"]["ttft_s"]
    text_of(browser, "sim-totals", differs_from=ttft_before,
            contains=json.dumps(second["totals"]["ttft_s"]))  # the totals table shows it
    assert browser.find_elements(By.CSS_SELECTOR, "#sim-roofline .main-svg")
    shot(browser, "simulate")


def test_codesign_view(url, browser):
    open_tab(browser, url, "codesign")
    first, text = page_json(browser, "cd-json")
    assert without_timing(first) == without_timing(
        cli_json(["plan", "--deploy-profile", "h100-sxm", "--json"]))
    set_input(browser, "#cd-target", "2.95")
    second, text = page_json(browser, "cd-json", differs_from=text)
    assert second["target_loss"] == 2.95
    assert second["optimum"]["cost"] != first["optimum"]["cost"]
    assert without_timing(second) == without_timing(cli_json(
        ["plan", "--deploy-profile", "h100-sxm", "--target-loss", "2.95", "--json"]))
    # a what-if: a native int4 engine on the focused profile = `precsim whatif`
    browser.find_element(By.CSS_SELECTOR, "#cd-native input[value='int4']").click()
    third, _ = page_json(browser, "cd-json", differs_from=text)
    whatif = cli_json(["whatif", "--profile", "h100-sxm", "--vary", "compute.int4=native",
                       "--target-loss", "2.95", "--json"])["variants"][-1]
    assert third["optimum"]["cost"] == whatif["cost"]
    assert third["optimum"]["serve_format"] == whatif["serve_format"]
    text_of(browser, "cd-per-profile", contains=json.dumps(third["optimum"]["cost"]))
    shot(browser, "codesign")


def test_laws_view(url, browser):
    open_tab(browser, url, "laws")
    first, text = page_json(browser, "law-json")
    assert first == cli_json(["law", "optimal", "--compute", "1e21", "--json"])
    set_input(browser, "#law-compute", "1e23")
    second, _ = page_json(browser, "law-json", differs_from=text)
    assert second == cli_json(["law", "optimal", "--compute", "1e23", "--json"])
    assert second["precision"] != first["precision"]
    assert browser.find_elements(By.CSS_SELECTOR, "#law-graph .main-svg")
    shot(browser, "laws")


def test_profiles_view(url, browser, tmp_path):
    open_tab(browser, url, "profiles")
    table = text_of(browser, "prof-compare")
    assert "[hopper] 80 GB HBM3" in table  # the h100-sxm HBM capacity's source
    tab = browser.find_element(By.ID, "prof-table").get_attribute("textContent")
    assert "[hopper] NVIDIA H100 Tensor Core GPU datasheet" in tab  # what [hopper] is
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: &a x\nkind: *a\n")
    browser.find_element(By.CSS_SELECTOR, "#prof-upload input[type='file']").send_keys(str(bad))
    message = text_of(browser, "prof-check-result")
    cli = cli_json_exit(["profiles", "check", str(bad), "--json"])["files"][0]
    assert cli["error"].replace(str(bad), "upload bad.yaml") == message
    good = tmp_path / "mine.yaml"
    doc = (ROOT / "hw_profiles" / "l4.yaml").read_text().replace("name: l4", "name: my-l4", 1)
    good.write_text(doc)
    browser.find_element(By.CSS_SELECTOR, "#prof-upload input[type='file']").send_keys(
        str(good))
    assert text_of(browser, "prof-check-result", differs_from=message).startswith(
        "ok: mine.yaml is a valid profile (my-l4)")
    assert "my-l4 source" in text_of(browser, "prof-compare", differs_from=table)
    shot(browser, "profiles")


def cli_json_exit(argv: list[str]) -> dict:
    """--json of a command that may exit 2 (bad input it reports in the JSON)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return json.loads(out.getvalue())
