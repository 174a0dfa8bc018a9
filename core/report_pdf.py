"""The decision report as a PDF: headless Chromium prints the HTML report (core.report), charts included.

The charts are plotly.js, so an HTML-to-PDF library without JavaScript (weasyprint, xhtml2pdf) would drop them;
the browser that draws them prints them. Chromium is a dev/test dependency (`make test` installs it), not a runtime
one: the HTML report is complete without it, and pdf_available() lets the UI say so.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from core.errors import StudioError
from core.storage import atomic_write_bytes

log = logging.getLogger(__name__)

CHROMIUM_ENV = "STUDIO_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PAPER_SIZES = ("A4", "Letter")
PDF_TIMEOUT_S = 90.0
_INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install chromium) or set STUDIO_CHROMIUM to a Chrome/Chromium binary; the HTML report is complete without it"


def find_chromium() -> str | None:
    """The Chromium/Chrome binary: $STUDIO_CHROMIUM if set (a path or a name on PATH), else the first on PATH."""
    override = os.environ.get(CHROMIUM_ENV, "").strip()
    if override:
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def pdf_available() -> bool:
    """Whether write_report_pdf can run here (a PATH lookup; starts nothing)."""
    return find_chromium() is not None


def write_report_pdf(html_path: str | Path, pdf_path: str | Path | None = None, *, paper: str = "A4",
                     timeout: float = PDF_TIMEOUT_S) -> Path:
    """Print a report HTML file to PDF with headless Chromium; atomic. Returns the PDF path (default: beside the HTML).

    Raises StudioError when there is no browser, it fails, it times out, or it writes no PDF.
    """
    html_path = Path(html_path)
    pdf_path = Path(pdf_path) if pdf_path else html_path.with_suffix(".pdf")
    if paper not in PAPER_SIZES:
        raise StudioError(f"Paper size {paper!r} is not supported; choose one of {', '.join(PAPER_SIZES)}.")
    if not html_path.is_file():
        raise StudioError(f"{html_path} does not exist; build the HTML report first.")
    browser = find_chromium()
    if browser is None:
        override = os.environ.get(CHROMIUM_ENV, "").strip()
        where = f"{CHROMIUM_ENV}={override} is not an executable" if override else "no Chromium or Chrome was found on PATH"
        raise StudioError(f"The PDF report needs headless Chromium, and {where}: {_INSTALL_HINT}.")
    with tempfile.TemporaryDirectory(prefix="studio-pdf-") as tmp:
        tmp_dir = Path(tmp)
        # A copy that fixes the paper size: Chromium's command line has no paper option and its default depends on
        # the locale; the saved HTML keeps `size` unset so a reader's own Print dialog picks their paper.
        page = tmp_dir / "report.html"
        text = html_path.read_text(encoding="utf-8")
        page.write_text(text.replace("</head>", f"<style>@page{{size:{paper}}}</style></head>", 1), encoding="utf-8")
        out = tmp_dir / "report.pdf"
        # --no-sandbox: Chromium will not start as root (containers) with its sandbox; what it opens is our own
        # escaped, self-contained HTML from a local file, with background networking off.
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-extensions",
            "--no-first-run", "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={tmp_dir / 'profile'}", "--no-pdf-header-footer",
            # virtual time runs as fast as the page is idle: it lets plotly finish drawing without a fixed sleep
            "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
            f"--print-to-pdf={out}", page.as_uri(),
        ]
        started = time.monotonic()
        # own process group, so a timeout ends Chromium's helper processes too (and only those)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.communicate()
            raise StudioError(f"Chromium did not finish printing the PDF within {timeout:.0f} s ({browser}); "
                              "try again when the machine is less busy, or print the HTML report from a browser.") from None
        elapsed = time.monotonic() - started
        data = out.read_bytes() if out.exists() else b""
        if process.returncode != 0 or not data.startswith(b"%PDF"):
            detail = _last_error_line(stderr.decode("utf-8", "replace"))
            what = f"exited with code {process.returncode}" if process.returncode != 0 else "wrote no PDF"
            raise StudioError(f"Chromium ({browser}) {what} while printing the report{': ' + detail if detail else ''}. "
                              "Check that it starts (`chromium --headless --version`), or print the HTML report from a browser.")
        atomic_write_bytes(pdf_path, data)
        shutil.rmtree(tmp_dir / "profile", ignore_errors=True)
    log.info("PDF report %s: %d bytes in %.1f s", pdf_path, len(data), elapsed)
    return pdf_path


def _last_error_line(stderr: str) -> str:
    """Chromium's last meaningful stderr line (it logs harmless D-Bus noise on machines without a session bus)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "dbus" not in line.lower()]
    return lines[-1][:300] if lines else ""
