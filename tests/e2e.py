"""Real Streamlit server + Debian's headless Chromium (selenium), shared by the browser tests and scripts."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(workspace: Path, script: str = "app.py", port: int | None = None) -> Iterator[str]:
    """Start `streamlit run` on localhost with its own workspace; yield its URL; stop it afterwards."""
    port = port or free_port()
    env = dict(os.environ, STUDIO_WORKSPACE=str(workspace), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = open(Path(workspace) / f"streamlit-{port}.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"streamlit exited: {(Path(workspace) / f'streamlit-{port}.log').read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def chromium(width: int = 1280, height: int = 800):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + [f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_window_size(width, height)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in driver.find_element("tag name", "body").text:
            return
        time.sleep(0.3)
    raise AssertionError(f"{text!r} did not appear within {timeout:.0f} s; page shows:\n{driver.find_element('tag name', 'body').text[:2000]}")


def wait_idle(driver, timeout: float = 120.0) -> None:
    """Wait until Streamlit's 'running' indicator is gone."""
    deadline = time.time() + timeout
    time.sleep(0.5)
    while time.time() < deadline:
        running = driver.find_elements("css selector", '[data-testid="stStatusWidget"]')
        if not running:
            return
        time.sleep(0.3)
    raise AssertionError("the app kept running")
