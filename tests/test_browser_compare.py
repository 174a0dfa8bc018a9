"""Browser test: a real Streamlit server on port 8621 and headless Chromium ask one question in four columns.

Self-contained (the lead's shared fixtures live in main): prepares a workspace with a knowledge base
and a LoRA adapter, runs `streamlit run pages/compare.py`, and checks answers, sources and timings.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORT = 8621
URL = f"http://localhost:{PORT}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from compare_fixtures import prepare_workspace

    workspace = prepare_workspace(tmp_path_factory.mktemp("compare-browser"))
    env = dict(os.environ, STUDIO_WORKSPACE=str(workspace.root), PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    log = open(workspace.root / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "pages" / "compare.py"), "--server.port", str(PORT),
         "--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{URL}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("Streamlit did not start on port 8621")
    yield workspace
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--window-size=1500,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.mark.browser
@pytest.mark.slow
def test_one_question_four_columns(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(URL)
    wait = WebDriverWait(browser, 120)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']"))
    assert "Compare" in browser.find_element(By.TAG_NAME, "h1").text
    box.send_keys("When did the 1973 oil crisis begin?")
    box.send_keys(Keys.ENTER)

    def finished(driver):
        body = driver.find_element(By.TAG_NAME, "body").text
        return body if body.count("tok/s") >= 4 and "All columns in" in body else False

    body = WebDriverWait(browser, 400).until(finished)
    browser.save_screenshot(str(server.root / "compare-browser.png"))
    for label in ("Base model", "RAG", "Fine-tuned", "Hybrid (RAG + fine-tuned)"):
        assert label in body
    assert "first token" in body and "Generation failed" not in body, body
    expanders = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stExpander'] summary")
    sources = [e for e in expanders if "Sources (" in e.text]
    assert len(sources) == 2, [e.text for e in expanders]  # RAG and hybrid
    sources[0].click()
    wait.until(lambda d: "oil_and_amazon.txt" in d.find_element(By.TAG_NAME, "body").text)
    assert "score" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(server.root / "compare-browser.png"))
