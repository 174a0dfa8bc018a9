"""Browser test: the real app (app.py router) and headless Chromium ask one question in four columns.

Prepares a workspace with a knowledge base and a LoRA adapter, opens the Compare page, and checks
answers, sources and timings.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.e2e import chromium, streamlit_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from compare_fixtures import prepare_workspace

    workspace = prepare_workspace(tmp_path_factory.mktemp("compare-browser"))
    with streamlit_server(workspace.root) as url:
        yield SimpleNamespace(root=workspace.root, url=url)


@pytest.fixture(scope="module")
def browser():
    with chromium(1500, 1000) as driver:
        yield driver


@pytest.mark.browser
@pytest.mark.slow
def test_one_question_four_columns(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server.url}/compare")
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
    assert "similarity" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(server.root / "compare-browser.png"))
