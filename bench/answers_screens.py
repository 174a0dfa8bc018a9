"""Screenshots of the support badges on Ask and Compare (docs/screenshots/ask-support.png, compare-support.png).

    STUDIO_WORKSPACE=/tmp/loop-ws HF_HUB_OFFLINE=1 python bench/answers_screens.py

Needs the workspace bench/loop_setup.py and bench/loop_bench.py built (knowledge base "tenq" from the 10-Q-like
PDF, a demo adapter). Starts the real app, drives headless Chromium, and opens the Sources expanders so the
highlighted supporting sentence shows. Not collected by pytest.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tests.e2e import chromium, streamlit_server, wait_for_text, wait_idle  # noqa: E402
from tests.test_browser_rag import open_page, select_option, wait_until  # noqa: E402

SHOTS = ROOT / "docs" / "screenshots"
ASK_QUESTION = "What was Northwind Circuits' total revenue for the quarter?"
COMPARE_QUESTION = "What was Northwind Circuits' net income for the quarter?"


def _open_sources(driver, count: int) -> None:
    summaries = [e for e in driver.find_elements("css selector", "[data-testid='stExpander'] summary") if "Sources (" in e.text]
    for summary in summaries[-count:]:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
        summary.click()
        time.sleep(1.0)


def _open(driver, title: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(5):  # the sidebar re-renders while the app starts
        try:
            open_page(driver, title)
            return
        except StaleElementReferenceException:
            time.sleep(2)
    open_page(driver, title)


def _ask(driver, question: str) -> None:
    from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException

    for attempt in range(30):
        try:
            box = driver.find_element("css selector", "[data-testid='stChatInputTextArea']")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
            box.click()
            box.send_keys(question)
            box.send_keys("\n")
            return
        except (ElementNotInteractableException, StaleElementReferenceException):
            time.sleep(2)
    raise RuntimeError("the chat input never became usable")


def _pick_kb(driver, name: str) -> None:
    wait_until(lambda: driver.find_elements("css selector", 'input[role="combobox"][aria-label="Knowledge base"]'), 120,
               "no knowledge base picker", driver)
    select_option(driver, "Knowledge base", name)


def main() -> int:
    workspace = Path(os.environ["STUDIO_WORKSPACE"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(workspace) as url, chromium(1500, 1100) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1500, "height": 1100, "deviceScaleFactor": 1, "mobile": False})
        driver.get(url)
        wait_idle(driver, 120)
        _open(driver, "Ask")
        wait_for_text(driver, "Ask your documents", 60)
        _pick_kb(driver, "tenq")
        wait_idle(driver)
        _ask(driver, ASK_QUESTION)
        wait_for_text(driver, "tokens/s", 600)
        wait_idle(driver, 300)
        _open_sources(driver, 1)
        messages = driver.find_elements("css selector", "[data-testid='stChatMessage']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", messages[-1])
        time.sleep(1)
        driver.save_screenshot(str(SHOTS / "ask-support.png"))
        print("ask:", messages[-1].text[:600])

        _open(driver, "Compare")
        wait_for_text(driver, "Compare", 60)
        _pick_kb(driver, "tenq")
        wait_idle(driver)
        _ask(driver, COMPARE_QUESTION)
        deadline = time.time() + 900
        while time.time() < deadline:
            body = driver.find_element("tag name", "body").text
            if body.count("tok/s") >= 4 and "All columns in" in body:
                break
            time.sleep(1)
        wait_idle(driver, 300)
        _open_sources(driver, 2)
        turn = driver.find_elements("css selector", "[data-testid='stChatMessage']")[-1]
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", turn)
        time.sleep(1)
        driver.save_screenshot(str(SHOTS / "compare-support.png"))
        print("compare:", driver.find_element("tag name", "body").text[-2500:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
