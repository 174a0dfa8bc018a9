"""Browser end-to-end: the real Streamlit server and headless Chromium, with the real embedded models.

Decide (the default page) renders a recommendation; Documents creates a knowledge base and ingests a
PDF through the file uploader, then a broken PDF next to a good text file; Ask answers a question
with sources and timing. Screenshots land in the test's tmp dir, and in docs/screenshots/ when
STUDIO_SAVE_SCREENSHOTS=1 (the README's pictures).

Navigation always starts at the root URL and clicks the sidebar: a first request straight to a deep
link on a fresh server runs the legacy pages/ router instead of app.py's st.navigation.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from selenium.webdriver.common.keys import Keys

from tests.e2e import chromium, streamlit_server, wait_for_text, wait_idle
from tests.pdfs import make_huge_array_pdf, make_image_scan_pdf, make_pdf

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
README_SHOTS = ROOT / "docs" / "screenshots"
GENERATION_TIMEOUT = 300  # first answer may include the one-time SmolLM2 conversion (~20 s idle, more on a shared CPU)

ZORBLAX_PAGES = [
    "Zorblax Industries: company handbook\n\n"
    "Zorblax Industries was founded in 1987 by Ingrid Vasshaug. The company headquarters are in Tromsø, "
    "Norway, on the island of Tromsøya, close to the Arctic Cathedral. Zorblax designs and builds "
    "snow-melting heat pumps for harbours and airports in the far north.",
    "Warranty\n\n"
    "Every Zorblax heat pump comes with a warranty that lasts 7 years (seven years) from the date of "
    "installation. The warranty covers the compressor, the glycol circuit and the control unit. "
    "Claims are handled by the service desk in Tromsø within 10 working days.",
    "Products\n\n"
    "The flagship product is the Zorblax Polar-9, which keeps up to 900 square metres of pavement free of "
    "ice at minus 30 degrees Celsius. The smaller Zorblax Fjord-3 is sold to private harbours. "
    "Zorblax employs 412 people and exports to Iceland, Greenland and Canada.",
]


# ---------------------------------------------------------------- helpers
def body_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def wait_until(predicate, timeout: float, message: str, driver=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    page = f"\npage shows:\n{body_text(driver)[-2500:]}" if driver is not None else ""
    raise AssertionError(f"{message} (waited {timeout:.0f} s){page}")


def open_page(driver, title: str) -> None:
    """Click a sidebar navigation link (never a deep link, see the module docstring)."""
    links = wait_until(
        lambda: [a for a in driver.find_elements("css selector", '[data-testid="stSidebarNav"] a') if a.text.strip().endswith(title)],
        30, f"no sidebar link {title!r}", driver,
    )
    links[0].click()
    wait_until(lambda: driver.current_url.rstrip("/").endswith(title.lower()) or title == "Decide", 30, f"did not open {title}", driver)
    wait_idle(driver)


def button(driver, label: str):
    found = driver.find_elements("xpath", f"//button[.//p[contains(text(), {label!r})]]")
    return found[0] if found else None


def click_button(driver, label: str, timeout: float = 30) -> None:
    target = wait_until(lambda: (b := button(driver, label)) is not None and b.is_enabled() and b, timeout,
                        f"button {label!r} never became clickable", driver)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()


def select_option(driver, label: str, option: str) -> None:
    """Pick an option of an st.selectbox (a react-aria combobox: the options open in a portal)."""
    box = wait_until(lambda: driver.find_elements("css selector", f'input[role="combobox"][aria-label="{label}"]'), 30,
                     f"no selectbox {label!r}", driver)[0]  # a busy server renders the page in steps
    if option in (box.get_attribute("value") or ""):
        return
    box.click()
    choice = wait_until(
        lambda: [o for o in driver.find_elements("css selector", '[role="option"]') if option in o.text], 10,
        f"no option {option!r} in {label!r}", driver,
    )
    choice[0].click()
    wait_idle(driver)


def upload(driver, paths: list[Path]) -> None:
    """st.file_uploader: send the paths to its hidden <input type=file> (newline-separated for several)."""
    field = wait_until(lambda: driver.find_elements("css selector", '[data-testid="stFileUploaderDropzoneInput"], input[type="file"]'),
                       30, "no file uploader", driver)[0]
    field.send_keys("\n".join(str(path) for path in paths))
    for path in paths:
        wait_for_text(driver, path.name, 30)


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    target = tmp_path / f"{name}.png"
    driver.save_screenshot(str(target))
    if os.environ.get("STUDIO_SAVE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, README_SHOTS / target.name)
    return target


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module. Reuses an already converted SmolLM2 when STUDIO_TEST_MODELS points at one."""
    workspace = tmp_path_factory.mktemp("browser-ws")
    shared = os.environ.get("STUDIO_TEST_MODELS")
    converted = Path(shared) / "models" / "SmolLM2-135M-Instruct" if shared else None
    if converted and (converted / "config.json").exists():
        (workspace / "models").mkdir()
        (workspace / "models" / converted.name).symlink_to(converted)
    with streamlit_server(workspace) as url:
        yield url


@pytest.fixture
def browser():
    with chromium(1280, 800) as driver:
        # --window-size sizes the outer window; pin the viewport itself so screenshots are 1280 x 800
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        yield driver


# ---------------------------------------------------------------- tests
def test_decide_page_shows_a_recommendation(server, browser, tmp_path):
    browser.get(server)
    wait_for_text(browser, "Recommended", 90)
    wait_idle(browser)
    time.sleep(1.0)  # let the plotly chart finish drawing before the picture
    shot = screenshot(browser, tmp_path, "decide")
    assert shot.stat().st_size > 10_000
    from PIL import Image

    assert Image.open(shot).size == (1280, 800)


def test_documents_then_ask(server, browser, tmp_path):
    pdf = tmp_path / "zorblax_handbook.pdf"
    pdf.write_bytes(make_pdf(ZORBLAX_PAGES))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"")
    notes = tmp_path / "service_notes.txt"
    notes.write_text("Zorblax service notes. The Polar-9 needs a glycol refill every 18 months. "
                     "Spare parts ship from the Tromsø warehouse.\n")
    filing = tmp_path / "filing_10q.pdf"  # an array past pypdf's limit: read by pdfium (issue #15)
    filing.write_bytes(make_huge_array_pdf())
    scan = tmp_path / "scanned_invoice.pdf"  # pages that are only images
    scan.write_bytes(make_image_scan_pdf(2))

    browser.get(server)
    wait_for_text(browser, "Recommended", 90)

    # Documents: create a knowledge base through the "New knowledge base" option and its form
    open_page(browser, "Documents")
    wait_for_text(browser, "Build knowledge bases", 30)
    select_option(browser, "Knowledge base", "New knowledge base")
    name = wait_until(lambda: browser.find_elements("css selector", 'input[aria-label="Name"]'), 30, "no Name field", browser)[0]
    # clear() does not reach React's state: select all and type over it instead
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys(Keys.DELETE)
    name.send_keys("zorblax")
    click_button(browser, "Create knowledge base")
    wait_for_text(browser, "Drop files here", 120)  # first use loads MiniLM
    assert browser.find_element("css selector", 'input[role="combobox"][aria-label="Knowledge base"]').get_attribute("value") == "zorblax"
    wait_idle(browser)

    # One good PDF
    upload(browser, [pdf])
    click_button(browser, "Add to knowledge base")
    wait_for_text(browser, "“zorblax_handbook.pdf”: 3 pages", 120)
    wait_idle(browser)
    screenshot(browser, tmp_path, "documents")

    # A zero-byte PDF and a scan next to a good text file and a filing pypdf cannot read: the bad ones are
    # reported in plain words and stay listed, the others go in
    upload(browser, [broken, notes, filing, scan])
    click_button(browser, "Add to knowledge base")
    wait_for_text(browser, "“service_notes.txt”: 1 page", 120)
    # The failure list renders after the successes: wait for its last line before reading the page (CI once read it
    # between the list's heading and its first row)
    wait_for_text(browser, "“scanned_invoice.pdf” has no text layer", 30)
    wait_idle(browser)
    text = body_text(browser)
    assert "“broken.pdf” is empty (0 bytes)" in text
    assert "“filing_10q.pdf”: 1 page" in text and "Reached maximum" not in text
    assert "“scanned_invoice.pdf” has no text layer" in text and "OCR" in text
    assert "Files that could not be added (2)" in text
    errors = [e.text for e in browser.find_elements("css selector", '[data-testid="stAlert"]') if "broken.pdf" in e.text]
    assert errors, "the broken file's message is not shown as an alert"
    wait_idle(browser)
    wait_until(lambda: "3" in browser.find_element("css selector", '[data-testid="stMetricValue"]').text, 30,
               "the Documents metric did not reach 3", browser)

    # Ask: a question the PDF answers
    open_page(browser, "Ask")
    wait_for_text(browser, "Ask your documents", 30)
    box = wait_until(lambda: browser.find_elements("css selector", '[data-testid="stChatInputTextArea"]'), 60, "no chat input", browser)[0]
    question = "How many years does the Zorblax warranty last?"
    box.send_keys(question)
    box.send_keys("\n")
    wait_for_text(browser, "tokens/s", GENERATION_TIMEOUT)
    wait_idle(browser)

    messages = browser.find_elements("css selector", '[data-testid="stChatMessage"]')
    assert len(messages) >= 2, "no user and assistant messages"
    assistant = messages[-1]
    answer = assistant.find_element("css selector", '[data-testid="stMarkdownContainer"]').text.strip()
    assert answer and "don't cover" not in answer.lower(), f"no grounded answer: {answer!r}"
    caption = assistant.find_element("css selector", '[data-testid="stCaptionContainer"]').text
    assert "tokens/s" in caption and " s · " in caption, caption

    sources = [e for e in assistant.find_elements("css selector", '[data-testid="stExpander"]') if "Sources (" in e.text]
    assert sources, "no Sources expander"
    summary = sources[0].find_element("css selector", "summary")
    driver_scroll(browser, summary)
    summary.click()
    wait_until(lambda: "zorblax_handbook.pdf" in sources[0].text and "7 years" in sources[0].text, 15,
               "Sources does not list the PDF and its text", browser)  # the expander fills in as it opens
    listed = sources[0].text
    assert re.search(r"\[\d+\] zorblax_handbook\.pdf · pp?\. \d", listed), listed
    assert "7 years" in listed
    screenshot(browser, tmp_path, "ask")


def driver_scroll(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
