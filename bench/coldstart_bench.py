"""Cold start: seconds from `streamlit run app.py` to the first page's content in headless Chromium.

    python bench/coldstart_bench.py [--rounds 3] [--results bench/RESULTS.md]

Each round starts a new server on a fresh workspace (no knowledge base) with Chromium already up,
then loads a page (the root, i.e. Decide, and the /documents deep link, alternating) until its
title shows, and reads the server's /proc/<pid>/maps: a mapped libtorch means the page imported
torch. Writes the "## Cold start" section of bench/RESULTS.md, replacing only that section.

Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.e2e import chromium, free_port  # noqa: E402

HEADING = "## Cold start (bench/coldstart_bench.py)"
FLOOR = Path(tempfile.mkdtemp(prefix="coldstart-floor-")) / "hello.py"
FLOOR.write_text('import streamlit as st\nst.title("Hello floor")\n')
PAGES = {  # name: (script, path, text that shows the page's content)
    "Decide (/)": (ROOT / "app.py", "", "Decide: RAG, fine-tuning, or both?"),
    "Documents (/documents)": (ROOT / "app.py", "/documents", "Build knowledge bases"),
    "floor: a one-line Streamlit app": (FLOOR, "", "Hello floor"),  # what Streamlit itself costs here
}


def torch_loaded(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def one_start(driver, script: Path, path: str, text: str) -> tuple[float, bool]:
    workspace = Path(tempfile.mkdtemp(prefix="coldstart-"))
    port = free_port()
    env = dict(os.environ, STUDIO_WORKSPACE=str(workspace), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = open(workspace / "streamlit.log", "w")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}{path}"
        while True:  # the browser retries until the server answers, as a user pressing reload would
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"no page after 120 s: {(workspace / 'streamlit.log').read_text()[-2000:]}")
            try:
                driver.get(url)
                break
            except Exception:
                time.sleep(0.05)
        while text not in driver.find_element("tag name", "body").text:
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"{text!r} did not show: {driver.find_element('tag name', 'body').text[:500]}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        time.sleep(1.0)  # let the script finish its run before looking at what it imported
        return seconds, torch_loaded(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if HEADING in text:
        start = text.index(HEADING)
        following = text.find("\n## ", start + len(HEADING))
        text = text[:start] + body + (text[following + 1 :] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text if text.endswith("\n") else text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--label", default="", help="a note for the table, e.g. the commit measured")
    args = parser.parse_args()

    results: dict[str, list[tuple[float, bool, float]]] = {name: [] for name in PAGES}
    with chromium() as driver:
        driver.set_page_load_timeout(30)
        for round_number in range(args.rounds):
            names = list(PAGES) if round_number % 2 == 0 else list(reversed(PAGES))
            for name in names:
                load = os.getloadavg()[0]
                seconds, torch = one_start(driver, *PAGES[name])
                results[name].append((seconds, torch, load))
                print(f"{name}: {seconds:.2f} s, torch imported: {torch}, load {load:.1f}", flush=True)

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    lines = [
        HEADING,
        "",
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu}, {os.cpu_count()} cores · commit {commit} {args.label}".rstrip(),
        "",
        "From `streamlit run app.py` (new process, fresh workspace) to the page's title in headless Chromium "
        "(already running). torch imported: libtorch mapped in the server process after the page rendered. "
        "The floor is a one-line Streamlit app started the same way: the part of a cold start that is Streamlit's own.",
        "",
        "| page | runs | median s | min s | max s | torch imported | load average |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, runs in results.items():
        seconds = [run[0] for run in runs]
        loads = [run[2] for run in runs]
        lines.append(f"| {name} | {len(runs)} | {statistics.median(seconds):.2f} | {min(seconds):.2f} | {max(seconds):.2f} | "
                     f"{'yes' if any(run[1] for run in runs) else 'no'} | {min(loads):.1f}–{max(loads):.1f} |")
    body = "\n".join(lines) + "\n"
    write_section(args.results, body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
