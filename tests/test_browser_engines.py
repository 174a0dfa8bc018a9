"""Browser test: a Compare column set to the openai engine streams its answer from a real llama.cpp server.

The real app (app.py router) in headless Chromium; the server is `python -m llama_cpp.server` on 127.0.0.1
serving the embedded SmolLM2 GGUF. The base column picks "openai" in "Engine per column".
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.e2e import chromium, streamlit_server
from tests.test_engine_llamacpp import start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    from core.models import embedded_generator_gguf

    process, api = start_server(embedded_generator_gguf(), "smollm2")
    root = tmp_path_factory.mktemp("engines-browser")
    try:
        with streamlit_server(root) as url:
            yield SimpleNamespace(root=root, url=url, api=api)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _choose(driver, label: str, option: str) -> None:
    """Pick `option` in the Streamlit select box labelled `label` (type it, then Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = next(b for b in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stSelectbox']") if label in b.text)
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.click()
    field.send_keys(option)
    field.send_keys(Keys.ENTER)


def _fill(driver, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = next(b for b in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stTextInput']") if label in b.text)
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)
    field.send_keys(Keys.ENTER)


def test_a_compare_column_streams_from_an_openai_server(servers):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(1500, 1100) as browser:
        browser.get(f"{servers.url}/compare")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']"))
        expander = next(e for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stExpander'] summary") if "Engine per column" in e.text)
        expander.click()
        wait.until(lambda d: "Base model engine" in d.find_element(By.TAG_NAME, "body").text)
        _choose(browser, "Base model engine", "openai")
        wait.until(lambda d: "Served model name" in d.find_element(By.TAG_NAME, "body").text)
        _fill(browser, "Server base URL", servers.api)
        time.sleep(1)
        _fill(browser, "Served model name", "smollm2")
        time.sleep(1)
        box = browser.find_element(By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']")
        box.send_keys("Name three colours of the rainbow.")
        box.send_keys(Keys.ENTER)
        seen_streaming = False
        deadline = time.time() + 300
        body = ""
        while time.time() < deadline:
            body = browser.find_element(By.TAG_NAME, "body").text
            seen_streaming = seen_streaming or "▌" in body  # the cursor shows while a column is still streaming
            if "All columns in" in body:
                break
            time.sleep(0.1)
        browser.save_screenshot(str(servers.root / "compare-openai-column.png"))
    assert "All columns in" in body, body[-2000:]
    assert "openai · smollm2" in body and "tok/s" in body, body[-2000:]
    assert "Could not reach" not in body and "rejected" not in body, body[-2000:]
    assert seen_streaming, "the answer arrived in one piece instead of streaming"
