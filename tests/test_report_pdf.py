"""The PDF report: headless Chromium's print-to-PDF (browser-marked), and every error path through the
STUDIO_CHROMIUM seam with small fake browsers (fast, no Chromium needed)."""
from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from core import report, report_pdf
from core.errors import StudioError
from core.evaluation import load_summary
from tests.test_report import evaluated  # noqa: F401  (the fixture: a small evaluation with a training run)

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "evaluate.py")


def fake_browser(tmp_path: Path, body: str) -> Path:
    """An executable that stands where Chromium does. `out` is the --print-to-pdf target, `url` the page."""
    script = tmp_path / "fake-chromium"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "from pathlib import Path\n"
        "from urllib.parse import unquote, urlparse\n"
        "args = sys.argv[1:]\n"
        "out = next(a.split('=', 1)[1] for a in args if a.startswith('--print-to-pdf='))\n"
        "url = args[-1]\n"
        + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


WRITES_PAGE = "Path(out).write_bytes(b'%PDF-1.4 fake\\n' + Path(unquote(urlparse(url).path)).read_bytes())\n"


def _text(pdf: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    assert len(reader.pages) >= 1
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in reader.pages))


# ---------------------------------------------------------------- real Chromium
@pytest.mark.browser
def test_pdf_has_every_section_the_scoreboard_and_the_charts(evaluated, tmp_path):  # noqa: F811
    from pypdf import PdfReader

    if not report_pdf.pdf_available():
        pytest.skip("no Chromium on this machine")
    workspace, eval_id = evaluated
    html = report.write_report(workspace, eval_id, tmp_path / "r.html", decision={"recommendation": "hybrid"})
    pdf = report_pdf.write_report_pdf(html)
    assert pdf == tmp_path / "r.pdf" and pdf.read_bytes().startswith(b"%PDF")
    text = _text(pdf)
    for label in report.SECTIONS.values():
        assert label in text, label
    board = load_summary(workspace, eval_id)["variants"]
    assert f"{board['rag']['f1']:.3f}" in text and f"{board['base']['latency_p50_s']:.2f}" in text
    # plotly drew the charts before the page was printed (their titles are SVG text in the PDF)
    for title in ("Scoreboard: token F1 per variant", "Metrics per variant", "Training loss", "Latency per answer"):
        assert title in text, title
    assert "<script>alert('x')</script> & more" in text  # the evil answer was escaped: printed as text, never run
    page = PdfReader(str(pdf)).pages[0].mediabox
    assert (round(float(page.width)), round(float(page.height))) == (595, 842)  # A4 in points
    letter = report_pdf.write_report_pdf(html, tmp_path / "letter.pdf", paper="Letter")
    page = PdfReader(str(letter)).pages[0].mediabox
    assert (round(float(page.width)), round(float(page.height))) == (612, 792)


@pytest.mark.browser
def test_cli_writes_a_pdf_when_out_ends_in_pdf(evaluated, tmp_path, capsys):  # noqa: F811
    from core.cli import main

    if not report_pdf.pdf_available():
        pytest.skip("no Chromium on this machine")
    workspace, eval_id = evaluated
    out = tmp_path / "out" / "decision.pdf"
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "Scoreboard" in _text(out)
    assert [p.name for p in out.parent.iterdir()] == ["decision.pdf"]  # the intermediate HTML is gone


# ---------------------------------------------------------------- errors, through the STUDIO_CHROMIUM seam
def test_missing_browser_says_what_to_do(tmp_path, monkeypatch):
    html = tmp_path / "r.html"
    html.write_text("<html><head></head><body>x</body></html>")
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(tmp_path / "nowhere" / "chromium"))
    assert not report_pdf.pdf_available()
    with pytest.raises(StudioError, match="STUDIO_CHROMIUM=.* is not an executable.*apt-get install chromium.*HTML report is complete"):
        report_pdf.write_report_pdf(html)
    monkeypatch.delenv(report_pdf.CHROMIUM_ENV)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not report_pdf.pdf_available()
    with pytest.raises(StudioError, match="no Chromium or Chrome was found on PATH.*apt-get install chromium"):
        report_pdf.write_report_pdf(html)
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.parametrize(
    "body, timeout, message",
    [
        ("sys.stderr.write('[1:2:ERROR:dbus/bus.cc] noise\\nboom: cannot open display\\n'); sys.exit(3)\n", 30, "exited with code 3.*boom: cannot open display"),
        ("pass\n", 30, "wrote no PDF"),
        ("Path(out).write_bytes(b'<html>not a pdf')\n", 30, "wrote no PDF"),
        ("time.sleep(60)\n", 1, "did not finish printing the PDF within 1 s"),
    ],
    ids=["exit-code", "no-output", "not-a-pdf", "timeout"],
)
def test_browser_failures_raise_clear_errors_and_leave_no_pdf(tmp_path, monkeypatch, body, timeout, message):
    html = tmp_path / "r.html"
    html.write_text("<html><head></head><body>x</body></html>")
    (tmp_path / "r.pdf").write_bytes(b"%PDF old")  # a previous PDF survives a failed one
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(fake_browser(tmp_path, body)))
    with pytest.raises(StudioError, match=message):
        report_pdf.write_report_pdf(html, timeout=timeout)
    assert (tmp_path / "r.pdf").read_bytes() == b"%PDF old"


def test_pdf_gets_the_paper_size_and_the_flags(tmp_path, monkeypatch):
    html = tmp_path / "r.html"
    html.write_text("<html><head><title>t</title></head><body>report</body></html>")
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(fake_browser(tmp_path, WRITES_PAGE + "Path(out + '.args').write_text('\\n'.join(args))\n")))
    assert report_pdf.pdf_available()
    pdf = report_pdf.write_report_pdf(html, tmp_path / "sub" / "letter.pdf", paper="Letter")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"@page{size:Letter}" in data and b"report" in data
    assert "@page{size" not in html.read_text()  # the saved HTML keeps the reader's own paper
    with pytest.raises(StudioError, match="Paper size"):
        report_pdf.write_report_pdf(html, paper="A3")
    with pytest.raises(StudioError, match="build the HTML report first"):
        report_pdf.write_report_pdf(tmp_path / "missing.html")


def test_report_html_prints_well():
    """The print rules the PDF relies on (looked at in docs/screenshots/report-pdf.png)."""
    css = report.CSS
    assert "@page{margin:12mm}" in css and "break-inside:avoid" in css and "thead{display:table-header-group}" in css
    assert "nav,.modebar-container{display:none!important}" in css
    # charts are redrawn to a width that fits A4's printable 703 px before printing, and back afterwards
    assert report.PRINT_CHART_WIDTH_PX <= 700 and "beforeprint" in report.PRINT_JS and "afterprint" in report.PRINT_JS


# ---------------------------------------------------------------- CLI and page, with a fake browser
def test_cli_pdf_flag_json_and_errors(evaluated, tmp_path, monkeypatch, capsys):  # noqa: F811
    from core.cli import main

    workspace, eval_id = evaluated
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(fake_browser(tmp_path, WRITES_PAGE)))
    out = tmp_path / "cli" / "r.html"
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(out), "--pdf", "--paper", "Letter", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["html"] == str(out) and payload["pdf"] == str(out.with_suffix(".pdf")) and payload["pdf_seconds"] >= 0
    assert b"@page{size:Letter}" in out.with_suffix(".pdf").read_bytes()
    # --out x.pdf: PDF only, the intermediate HTML removed
    only = tmp_path / "only" / "x.pdf"
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(only)]) == 0
    assert capsys.readouterr().out.strip() == str(only)
    assert sorted(p.name for p in only.parent.iterdir()) == ["x.pdf"]
    # no browser: exit 2, and the message says the HTML is there
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(tmp_path / "nope"))
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(tmp_path / "e.html"), "--pdf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The PDF report needs headless Chromium") and "The HTML report was written" in err
    assert (tmp_path / "e.html").exists() and not (tmp_path / "e.pdf").exists()
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(tmp_path / "e2.pdf")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".e2", "e2"))) == []


def test_page_offers_the_pdf_or_says_why_not(evaluated, tmp_path, monkeypatch):  # noqa: F811
    from streamlit.testing.v1 import AppTest

    workspace, eval_id = evaluated
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(fake_browser(tmp_path, WRITES_PAGE)))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert not at.exception
    assert "report_pdf_path" not in at.session_state  # building the HTML starts no browser
    next(b for b in at.button if b.label == "Make a PDF of the report").click().run()
    assert not at.exception and not at.error
    pdf = Path(at.session_state["report_pdf_path"])
    assert pdf == workspace.reports / f"report-{eval_id}.pdf" and pdf.read_bytes().startswith(b"%PDF")
    assert not any("No PDF here" in c.value for c in at.caption)
    # a failing browser: the error on the page, no PDF offered
    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(fake_browser(tmp_path, "sys.exit(1)\n")))
    next(b for b in at.button if b.label == "Build the report").click().run()
    next(b for b in at.button if b.label == "Make a PDF of the report").click().run()
    assert not at.exception and any("exited with code 1" in e.value for e in at.error)
    assert "report_pdf_path" not in at.session_state

    monkeypatch.setenv(report_pdf.CHROMIUM_ENV, str(tmp_path / "nope"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert not at.exception and not at.error
    assert not any(b.label == "Make a PDF of the report" for b in at.button)
    assert any("No PDF here" in c.value and "apt-get install chromium" in c.value for c in at.caption)
