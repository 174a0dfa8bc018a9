"""Reliability: nothing lost, nothing stuck, nobody in. Every file here is crafted by the test itself.

Run alone with: python -m pytest -m reliability -q   (add `-m "reliability and not slow"` to skip the one
real training run). Most cases use the hashed fake embedder; the real parts are the PDF readers,
SQLite, FAISS, subprocesses and the kill signals.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from core import index_cache, storage
from core.bounded_reader import extract_document_bounded
from core.catalogue import dismiss_ingest_failures, get_knowledge_base, list_documents, list_ingest_failures, list_knowledge_bases
from core.documents import DocumentError, ExtractionLimits, extract_document, safe_filename
from core.index_cache import load_index
from core.ingest import ingest_files
from core.retrieval import search
from tests.conftest import ROOT
from tests.pdfs import (
    make_deflate_bomb,
    make_huge_array_pdf,
    make_image_scan_pdf,
    make_low_text_pdf,
    make_ten_q_pdf,
)

pytestmark = pytest.mark.reliability

PAYLOAD = "<script>alert('x')</script><img src=x onerror=alert(1)> [click](javascript:alert(2)) ![i](http://e.invalid/p.png)"
PAYLOAD_NAME = "<img src=x onerror=alert(1)>[a](javascript:alert(3)).txt"
GOOD_TEXT = b"The Harbor Bridge opened in 1932 and carries eight lanes of traffic. Ada Brennan designed the arch. " * 4


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _cli(ws, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "--workspace", str(ws.root), *args], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=timeout)


def _consistent(ws, kb_name: str) -> None:
    """Catalogue passes quick_check, chunk rows match the documents' counts, and the index matches SQLite."""
    storage._CHECKED.clear()
    storage.check_catalogue(ws)
    kb = get_knowledge_base(ws, kb_name)
    assert kb.chunk_count == sum(d.chunk_count for d in list_documents(ws, kb_name))
    index_cache._INDEX_CACHE.clear()
    assert load_index(ws, kb).ntotal == kb.chunk_count


# ---------------------------------------------------------------- bad files: bounded, and every message plain
def test_deflate_bomb_is_refused_by_its_page_limit_in_well_under_a_second():
    data = make_deflate_bomb(pages=2, megabytes=40)  # ~120 KB that unpacks to 80 MB
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        extract_document_bounded("bomb.pdf", data)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "max_page_stream_mb" in message and "--max-page-mb" in message and "page 1" in message
    assert elapsed < 5, elapsed


def test_a_file_slower_than_its_time_budget_is_stopped_at_the_budget():
    data = make_deflate_bomb(pages=6, megabytes=30)  # pdfium needs ~1.5 s a page for this
    limits = ExtractionLimits(seconds_per_file=1, max_page_stream_mb=64)
    started = time.monotonic()
    with pytest.raises(DocumentError, match="longer than 1 s") as caught:
        extract_document_bounded("slow.pdf", data, limits=limits)
    elapsed = time.monotonic() - started
    assert "seconds_per_file" in str(caught.value) and "--read-seconds" in str(caught.value)
    assert elapsed < 1 + 3, elapsed  # the budget plus process start and kill, not the minutes the file would cost
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("read ")]  # the worker is gone


def test_a_reader_killed_mid_file_gives_a_message_not_a_hang():
    data = make_deflate_bomb(pages=8, megabytes=30)
    outcome = {}

    def read():
        try:
            extract_document_bounded("victim.pdf", data, limits=ExtractionLimits(seconds_per_file=60, max_page_stream_mb=64))
        except DocumentError as error:
            outcome["error"] = str(error)

    thread = threading.Thread(target=read)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = [p for p in multiprocessing.active_children() if p.name.startswith("read ")]
        if workers:
            time.sleep(0.3)
            os.kill(workers[0].pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    thread.join(30)
    assert "crashed the reader" in outcome["error"] and "nothing of it was stored" in outcome["error"]


def test_huge_array_pdf_reproduces_the_pypdf_limit_and_ingests_through_pdfium():
    import io

    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    data = make_huge_array_pdf()
    with pytest.raises(LimitReachedError, match="maximum array element count"):
        PdfReader(io.BytesIO(data)).pages[0].extract_text()  # the failure real 10-Qs showed
    document = extract_document_bounded("10q-array.pdf", data)
    assert document.reader == "pdfium" and "13,507 million" in document.pages[0].text


def test_huge_array_without_pdfium_gives_a_plain_message(monkeypatch):
    from core import pdf_reader

    def pdfium_cannot(*args, **kwargs):
        raise pdf_reader._ReaderFailed("simulated", "the file structure is broken")

    monkeypatch.setattr(pdf_reader, "_pdfium_pages", pdfium_cannot)  # the seam the fallback enters through
    with pytest.raises(DocumentError) as caught:
        extract_document("10q-array.pdf", make_huge_array_pdf())
    message = str(caught.value)
    assert "larger than the PDF reader accepts" in message and "Print to PDF" in message
    assert "Reached maximum" not in message and "LimitReachedError" not in message


def _docx_with_text(paragraphs: int) -> bytes:
    """A small .docx whose document.xml unpacks to about paragraphs x 1 KB of text (a zip/XML bomb when large)."""
    import io
    import zipfile

    body = ("<w:p><w:r><w:t>" + "lorem ipsum dolor sit amet " * 40 + "</w:t></w:r></w:p>") * paragraphs
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                         'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                         '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                         'wordprocessingml.document.main+xml"/></Types>')
        archive.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                         'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                         'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        archive.writestr("word/document.xml", '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                         f'wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>')
    return out.getvalue()


def test_a_docx_bomb_is_stopped_by_the_reader_memory_limit():
    data = _docx_with_text(80_000)  # ~300 KB that unpacks to 86 MB of XML
    with pytest.raises(DocumentError) as caught:
        extract_document_bounded("bomb.docx", data, limits=ExtractionLimits(max_memory_mb=256, max_total_chars=500_000_000))
    assert "max_memory_mb" in str(caught.value) and "--max-memory-mb" in str(caught.value)
    assert "lorem ipsum dolor" in extract_document("small.docx", _docx_with_text(2)).pages[0].text  # a real .docx: refused for its size, not its form


def test_character_limit_names_itself_and_its_flag():
    with pytest.raises(DocumentError) as caught:
        extract_document("long.txt", b"word " * 1000, limits=ExtractionLimits(max_total_chars=1000))
    assert "max_total_chars" in str(caught.value) and "--max-chars" in str(caught.value)


def test_many_pages_with_little_text_are_not_called_scanned_but_image_pages_are():
    document = extract_document("form.pdf", make_low_text_pdf(300))  # ~12 characters a page, a real text layer
    assert len(document.pages) == 300 and document.pages[5].text == "Form 12 p.5"
    with pytest.raises(DocumentError, match="images with almost no text.*OCR"):
        extract_document("scan.pdf", make_image_scan_pdf(3))


def test_ten_q_table_rows_stay_on_one_line():
    document = extract_document("10q.pdf", make_ten_q_pdf())
    lines = document.pages[-1].text.splitlines()
    assert "Services 20,907 19,821 5 %" in lines
    assert "(in millions) June 29, 2024 July 1, 2023 Change" in lines


def test_a_229_character_txt_name_keeps_its_extension(workspace, fake_embedder):
    name = "quarterly results " * 12 + "x" * (229 - 4 - 18 * 12) + ".txt"
    assert len(name) == 229
    kept = safe_filename(name)
    assert kept.endswith(".txt") and len(kept) <= 200
    result = ingest_files(workspace, "names", [(name, GOOD_TEXT)], fake_embedder)[0]
    assert result.status == "added", result.message


def test_sizes_are_checked_before_anything_is_read(workspace, fake_embedder, tmp_path):
    """Two 300 MB files (sparse: no disk used) are refused from their size; the batch never sits in memory."""
    big = []
    for number in range(2):
        path = tmp_path / f"huge{number}.txt"
        with open(path, "wb") as handle:
            handle.truncate(300 * 2**20)
        big.append((path.name, path))
    good = tmp_path / "good.txt"
    good.write_bytes(GOOD_TEXT)
    tracemalloc.start()
    started = time.monotonic()
    results = ingest_files(workspace, "sizes", [*big, (good.name, good)], fake_embedder)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r.status for r in results] == ["failed", "failed", "added"]
    assert all("the limit is 200 MB" in r.message for r in results[:2])
    assert peak < 20 * 2**20, peak  # far below one file's 300 MB
    assert time.monotonic() - started < 15


def test_failed_files_stay_listed_until_dismissed(workspace, fake_embedder):
    ingest_files(workspace, "kept", [("bomb.pdf", make_deflate_bomb(1, 40)), ("good.txt", GOOD_TEXT)], fake_embedder)
    failures = list_ingest_failures(workspace, "kept")
    assert [f.name for f in failures] == ["bomb.pdf"] and "max_page_stream_mb" in failures[0].message
    ingest_files(workspace, "kept", [("other.txt", b"Another document about lighthouses and tides. " * 5)], fake_embedder)
    assert len(list_ingest_failures(workspace, "kept")) == 1  # a later batch does not wipe it
    assert dismiss_ingest_failures(workspace, "kept", failures[0].id) == 1
    assert list_ingest_failures(workspace, "kept") == []


# ---------------------------------------------------------------- self-healing index
@pytest.fixture
def healed_kb(workspace, fake_embedder):
    ingest_files(workspace, "heal", [("harbor.txt", GOOD_TEXT), ("orchard.txt", b"The Linden Orchard grows twelve apples. " * 8)],
                 fake_embedder)
    kb = get_knowledge_base(workspace, "heal")
    return workspace, kb, workspace.indexes / str(kb.id)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "swapped", "torn manifest", "manifest missing"])
def test_a_damaged_index_heals_on_the_next_search(healed_kb, fake_embedder, caplog, damage):
    workspace, kb, folder = healed_kb
    index_file, manifest_file = folder / "index.faiss", folder / "manifest.json"
    good = index_file.read_bytes()
    if damage == "garbage":
        index_file.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated":
        index_file.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        index_file.write_bytes(b"")
    elif damage == "swapped":  # a valid FAISS file of the same size that is not this one (one vector changed)
        index_file.write_bytes(good[:-8] + bytes(8))
    elif damage == "torn manifest":
        manifest_file.write_text(manifest_file.read_text()[:40])
    else:
        manifest_file.unlink()
    index_cache._INDEX_CACHE.clear()  # as after a restart
    with caplog.at_level("WARNING", logger="core.index_cache"):
        hits = search(workspace, "heal", "When did the Harbor Bridge open", fake_embedder)
    assert hits[0].document == "harbor.txt"
    assert any("rebuilt from the catalogue" in record.getMessage() for record in caplog.records)
    manifest = json.loads(manifest_file.read_text())
    assert manifest["file_bytes"] == index_file.stat().st_size == len(good)
    _consistent(workspace, "heal")


# ---------------------------------------------------------------- damaged or vanished catalogue
def _blank(path: Path, how: str) -> None:
    """Damage studio.db the way a disk or a careless copy does (after moving the WAL's pages into it)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"this is not a database " * 400)
    else:  # header intact, pages after it overwritten
        data = bytearray(path.read_bytes())
        data[4096 * 2:4096 * 4] = b"\xde\xad\xbe\xef" * 2048
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["empty", "garbage", "pages"])
def test_a_damaged_catalogue_gives_one_clear_message_and_restores(healed_kb, fake_embedder, how):
    workspace, kb, folder = healed_kb
    backup = storage.list_backups(workspace)[0]  # made by the successful ingest
    index_cache._INDEX_CACHE.clear()
    _blank(workspace.db_path, how)
    storage._CHECKED.clear()  # a new process: the check runs on first open
    with pytest.raises(storage.CatalogueError) as caught:
        list_knowledge_bases(workspace)
    message = str(caught.value)
    assert str(workspace.db_path) in message and str(backup) in message and "restore-backup" in message

    done = _cli(workspace, "kb", "list")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "damaged" in done.stderr, done.stderr
    done = _cli(workspace, "kb", "restore-backup")
    assert done.returncode == 0, done.stderr
    storage._CHECKED.clear()
    assert [k.name for k in list_knowledge_bases(workspace)] == ["heal"]
    assert search(workspace, "heal", "Harbor Bridge", fake_embedder)[0].document == "harbor.txt"
    assert list(workspace.root.glob("studio.db.damaged-*"))  # the damaged file is kept, not deleted


def test_an_emptied_catalogue_never_reuses_an_orphaned_index_folder(healed_kb, fake_embedder):
    workspace, kb, folder = healed_kb
    orphan = (folder / "index.faiss").read_bytes()
    for path in storage.list_backups(workspace):
        path.unlink()
    _blank(workspace.db_path, "empty")
    with pytest.raises(storage.CatalogueError, match="no backup yet"):
        list_knowledge_bases(workspace)
    workspace.db_path.rename(workspace.root / "studio.db.aside")  # what the message tells the user to do
    ingest_files(workspace, "fresh", [("new.txt", b"A new knowledge base about tidal mills and their wheels. " * 5)], fake_embedder)
    fresh = get_knowledge_base(workspace, "fresh")
    assert fresh.id > kb.id
    assert (folder / "index.faiss").read_bytes() == orphan  # the orphan is untouched


def test_the_app_shows_a_damaged_catalogue_as_one_message(healed_kb):
    from streamlit.testing.v1 import AppTest

    workspace, _, _ = healed_kb
    _blank(workspace.db_path, "garbage")
    storage._CHECKED.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "documents.py"), default_timeout=60).run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "") if at.error else ""  # md_escape's backslashes
    assert len(at.error) == 1 and "is damaged" in shown and str(workspace.db_path) in shown and "restore-backup" in shown
    at.button(key="restore_catalogue").click().run()  # the app restores without a terminal
    assert not at.exception and not at.error
    assert [kb.name for kb in list_knowledge_bases(workspace)] == ["heal"]


@pytest.mark.parametrize("how", ["pages", "garbage"])  # pages: a raw sqlite3.DatabaseError mid-page; garbage: at connect
def test_the_app_shows_a_catalogue_damaged_while_it_runs_as_one_message(healed_kb, how):
    from streamlit.testing.v1 import AppTest

    workspace, _, _ = healed_kb
    backup = storage.list_backups(workspace)[0]
    # The real router: app.py run from a folder without pages/, since AppTest would otherwise run a switched-to
    # page bare (Streamlit's legacy pages/ mode, which ui/__init__.py leaves in a real server).
    router = f"import runpy\nrunpy.run_path({str(ROOT / 'app.py')!r}, run_name='__main__')"
    at = AppTest.from_string(router, default_timeout=60).run()
    at.switch_page(str(ROOT / "pages" / "documents.py")).run()
    assert at.sidebar.caption and at.title[0].value == "Documents"  # the page ran inside app.py
    assert not at.exception and not at.error  # checked and good: quick_check will not run again in this process
    _blank(workspace.db_path, how)
    at.run()
    assert not at.exception, at.exception[0].value
    shown = at.error[0].value.replace("\\", "") if at.error else ""  # md_escape's backslashes
    assert len(at.error) == 1 and "is damaged" in shown and str(workspace.db_path) in shown and str(backup) in shown
    at.button(key="restore_catalogue").click().run()
    assert not at.exception and not at.error
    assert [kb.name for kb in list_knowledge_bases(workspace)] == ["heal"]


def test_a_database_error_on_a_sound_catalogue_is_not_called_damage(healed_kb):
    from streamlit.testing.v1 import AppTest

    def page():
        import sqlite3

        from ui.common import catalogue_guard

        with catalogue_guard():
            raise sqlite3.IntegrityError("UNIQUE constraint failed: documents.sha256")

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.error and "UNIQUE constraint" in at.exception[0].value  # a bug keeps its own error


def test_backups_roll(workspace, fake_embedder):
    for number in range(storage.BACKUPS_KEPT + 2):
        ingest_files(workspace, "roll", [(f"f{number}.txt", f"Document number {number} about canals. ".encode() * 5)], fake_embedder)
    backups = storage.list_backups(workspace)
    assert len(backups) == storage.BACKUPS_KEPT
    newest = sqlite3.connect(backups[0])
    assert newest.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == storage.BACKUPS_KEPT + 2
    newest.close()


# ---------------------------------------------------------------- crashes and concurrency (real subprocesses)
INGEST_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from core.settings import get_workspace
    from core.ingest import ingest_files
    from tests.conftest import FakeEmbedder

    class SlowEmbedder(FakeEmbedder):
        def embed_documents(self, texts, progress=None):
            if any("SLOW" in text for text in texts):
                Path(sys.argv[3]).write_text("embedding")
                time.sleep(120)
            return super().embed_documents(texts, progress)

    files = [(Path(p).name, Path(p)) for p in json.loads(sys.argv[2])]
    results = ingest_files(get_workspace(sys.argv[1]), "race", files, SlowEmbedder())
    print(json.dumps([[r.file_name, r.status] for r in results]))
""")


def _ingest_process(ws, paths, marker: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(ws.root), json.dumps([str(p) for p in paths]), str(marker or "")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)


def test_kill_9_during_an_ingest_then_recovery(workspace, fake_embedder, tmp_path):
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(b"The first file is about river ferries and their timetables. " * 6)
    two.write_bytes(b"SLOW The second file is about mountain railways and their gradients. " * 6)
    marker = tmp_path / "embedding-started"
    process = _ingest_process(workspace, [one, two], marker)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "timeout"
        time.sleep(0.05)
    process.kill()  # SIGKILL while file 2 is being embedded, after file 1 was committed
    process.wait(10)
    assert [d.name for d in list_documents(workspace, "race")] == ["one.txt"]  # all of file 1, nothing of file 2
    _consistent(workspace, "race")
    results = ingest_files(workspace, "race", [("one.txt", one), ("two.txt", two)], fake_embedder)
    assert [r.status for r in results] == ["duplicate", "added"]
    assert sorted(d.name for d in list_documents(workspace, "race")) == ["one.txt", "two.txt"]
    _consistent(workspace, "race")


def test_two_concurrent_ingests_into_one_new_knowledge_base(workspace, tmp_path):
    texts = {f"{stem}.txt": f"Document {stem} describes the {stem} estuary, its birds and its tides. ".encode() * 6
             for stem in ("alpha", "beta", "gamma", "delta", "shared")}
    paths = {}
    for name, data in texts.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    first = _ingest_process(workspace, [paths["alpha.txt"], paths["beta.txt"], paths["shared.txt"]])
    second = _ingest_process(workspace, [paths["gamma.txt"], paths["shared.txt"], paths["delta.txt"]])
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    statuses = [dict(json.loads(out)) for out, _ in outputs]
    assert sorted([statuses[0]["shared.txt"], statuses[1]["shared.txt"]]) == ["added", "duplicate"]
    assert all(status == "added" for result in statuses for name, status in result.items() if name != "shared.txt")
    assert sorted(d.name for d in list_documents(workspace, "race")) == sorted(texts)  # nothing lost, nothing doubled
    _consistent(workspace, "race")


# ---------------------------------------------------------------- messages on the terminal
def test_cli_search_strips_terminal_escapes(workspace, fake_embedder, monkeypatch):
    evil = "The lighthouse keeper \x1b]0;pwned\x07\x1b[2J logs every ship \x1b[31min red\x1b[0m at dawn. " * 4
    ingest_files(workspace, "term", [("evil.txt", evil.encode())], fake_embedder)
    from core.commands import knowledge as commands

    import contextlib
    import io
    from types import SimpleNamespace

    Args = SimpleNamespace(workspace=str(workspace.root), kb="term", query="lighthouse keeper", k=3, mode="lexical",
                           queries=None, json=False)

    from tests.fake_engines import install_embedder

    install_embedder(monkeypatch, fake_embedder)  # the knowledge base records the fake's model id: the command loads it
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert commands.cmd_search(Args) == 0
    printed = buffer.getvalue()
    assert "lighthouse keeper" in printed and "in red" in printed
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", printed)


TERMINAL_EVIL = "The lighthouse keeper \x1b]0;x\x07\x1b[2J logs every ship at dawn. " * 4


@pytest.mark.parametrize("command", [["ask", "Who logs every ship?", "--kb", "term", "--k", "2"],
                                     ["compare", "Who logs every ship?", "--kb", "term", "--k", "2", "--variants", "base,rag"]])
def test_cli_ask_and_compare_strip_terminal_escapes(workspace, fake_embedder, monkeypatch, capsys, command):
    from core.cli import main
    from tests.fake_engines import install, install_embedder

    ingest_files(workspace, "term", [("evil.txt", TERMINAL_EVIL.encode())], fake_embedder)
    install_embedder(monkeypatch, fake_embedder)
    install(monkeypatch)  # the echo engine repeats source [1]'s first sentence, escapes and all
    argv = ["--workspace", str(workspace.root), *command]
    assert main([*argv, "--json"]) == 0
    assert "\\u001b]0;x\\u0007" in capsys.readouterr().out  # JSON escapes them: the raw text does reach the command
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "lighthouse keeper" in printed and "logs every ship" in printed
    assert "\x1b" not in printed and "\x07" not in printed, repr(printed)


def test_an_empty_run_id_is_refused(workspace):
    done = _cli(workspace, "train", "--dataset", "anything", "--run-id", "")
    assert done.returncode == 2 and "--run-id is empty" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- HTML and script payloads never rendered live
def _rendered(at) -> list[tuple[str, str, bool]]:
    """(kind, markdown source, rendered as HTML) for every element whose text Streamlit renders as markdown."""
    out = [("markdown", el.value, bool(el.proto.allow_html)) for el in at.markdown]
    for kind in ("caption", "error", "warning", "info", "success", "title", "subheader", "header"):
        out += [(kind, el.value, False) for el in getattr(at, kind)]
    out += [("expander", el.label, False) for el in at.expander]
    return out


def _assert_inert(text: str) -> None:
    """Markdown source that shows the payload literally: no live tag, link or image."""
    assert not re.search(r"(?<!\\)<(script|img)", text), text
    assert not re.search(r"(?<!\\)\]\(", text), text


def test_payloads_in_file_names_and_text_are_inert_on_the_documents_page(workspace, fake_embedder):
    from streamlit.testing.v1 import AppTest

    results = ingest_files(workspace, "evil", [(PAYLOAD_NAME, f"{PAYLOAD} The pier is 300 metres long. ".encode() * 4),
                                                   ("bad [click](evil.example) <b>.pdf", b"not a pdf")], fake_embedder)
    assert results[0].status == "added" and results[1].status == "failed"
    at = AppTest.from_file(str(ROOT / "pages" / "documents.py"), default_timeout=60)
    at.session_state["active_kb"] = "evil"
    at.run()
    assert not at.exception
    shown = _rendered(at)
    assert any("click" in text and "not a PDF" in text for _, text, _ in shown)  # the failure is listed, escaped
    for kind, text, as_html in shown:
        if "alert" in text or "click" in text:
            assert not as_html, (kind, text)
            _assert_inert(text)
    assert all(PAYLOAD not in el.value for el in at.markdown if el.proto.allow_html)


def test_payloads_in_questions_and_answers_are_escaped_in_the_compare_export_and_the_report(workspace, fake_embedder, tmp_path):
    from core import evaluation, report
    from core.compare import Comparison, export_html, export_markdown
    from core.variants import Answer
    from core.evaluation import EvaluationSettings, QuestionItem
    from core.retrieval import Hit
    from tests.test_evaluation import FakeRunner, timed
    from ui.common import md_escape, md_model_text

    hit = Hit(1, PAYLOAD_NAME, 1, 1, 0.9, PAYLOAD)
    comparison = Comparison(question=PAYLOAD, answers={"rag": Answer("rag", text=PAYLOAD, hits=[hit])}, kb="evil")
    page = export_html([comparison])
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "](javascript" in export_markdown([comparison])  # markdown export is a text file: kept verbatim, never rendered here

    class EvilRunner(FakeRunner):
        def answer(self, question, variant, hits):
            return timed(variant, PAYLOAD, 0.1, 0.2, 5)

    ingest_files(workspace, "evil", [(PAYLOAD_NAME, f"{PAYLOAD} The pier is 300 metres long. ".encode() * 4)], fake_embedder)
    questions = [QuestionItem("q1", f"How long is the pier? {PAYLOAD}", ("300",), PAYLOAD_NAME, None)]
    eval_id = evaluation.run_evaluation(workspace, EvilRunner(), questions, EvaluationSettings(variants=("base", "rag")),
                                        kb="evil", embedder=fake_embedder, question_source=PAYLOAD)
    html = report.write_report(workspace, eval_id, tmp_path / "r.html").read_text()
    body = html.split("<main>", 1)[1].rsplit("</main>", 1)[0]
    assert "<script>alert" not in body and "<img src=x" not in body and "alert(" in body  # present, escaped
    for text in (PAYLOAD, PAYLOAD_NAME):
        _assert_inert(md_escape(text))
        assert not re.search(r"(?<!\\)<(script|img)", md_model_text(text))
        assert not re.search(r"(?<!\\)\]\(javascript", md_model_text(text))


# ---------------------------------------------------------------- training: kill -9 of the worker, then resume
def test_progress_rewinds_to_the_checkpoint_a_resume_starts_from(tmp_path):
    from core.training.worker import ProgressWriter

    writer = ProgressWriter(tmp_path / "progress.jsonl")
    writer.write({"event": "start", "total": 20})
    for step in range(1, 15):
        writer.write({"event": "step", "step": step, "loss": 3 - step * 0.1, "elapsed": step * 2.0})
    writer.write({"event": "end", "status": "failed", "step": 14})
    with open(writer.path, "a") as handle:
        handle.write('{"event": "step", "st')  # torn by the kill
    kept = writer.rewind(10)
    assert [e["step"] for e in kept if e["event"] == "step"] == list(range(1, 11))
    assert kept[-1]["elapsed"] == 20.0 and not any(e["event"] == "end" for e in kept)
    assert len(writer.path.read_text().splitlines()) == 11


def _payload_history(workspace, fake_embedder):
    from core.retrieval import Hit

    ingest_files(workspace, "evil", [("pier.txt", f"{PAYLOAD} The pier is 300 metres long. ".encode() * 4)], fake_embedder)
    return Hit(1, "pier [x](evil.example).txt", 1, 1, 0.9, PAYLOAD)


def test_payloads_in_questions_and_model_output_are_inert_on_the_ask_page(workspace, fake_embedder):
    """The chat history is what the page renders on every rerun: a stored question and answer carrying the payload."""
    from streamlit.testing.v1 import AppTest

    from core.ask import GroundedAnswer

    hit = _payload_history(workspace, fake_embedder)
    at = AppTest.from_file(str(ROOT / "pages" / "ask.py"), default_timeout=60)
    at.session_state["kb"] = "evil"
    at.session_state["active_kb"] = "evil"
    at.session_state["ask_history"] = {"evil": [GroundedAnswer(f"Question {PAYLOAD}", f"Answer {PAYLOAD}", [hit])]}
    at.run()
    assert not at.exception
    shown = _rendered(at)
    assert any("Answer" in text and "alert" in text for _, text, _ in shown)  # the answer is shown, literally
    for kind, text, as_html in shown:
        if "alert" in text or "evil.example" in text:
            assert not as_html, (kind, text)
            _assert_inert(text)


def test_payloads_in_questions_and_model_output_are_inert_on_the_compare_page(workspace, fake_embedder):
    from streamlit.testing.v1 import AppTest

    from core.compare import Comparison
    from core.variants import Answer

    hit = _payload_history(workspace, fake_embedder)
    comparison = Comparison(question=f"Question {PAYLOAD}", kb="evil", answers={
        "base": Answer("base", text=f"Base {PAYLOAD}"), "rag": Answer("rag", text=f"RAG {PAYLOAD}", hits=[hit])})
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60)
    at.session_state["compare_history"] = [comparison]
    at.run()
    assert not at.exception
    shown = _rendered(at)
    assert any("RAG" in text and "alert" in text for _, text, _ in shown)
    for kind, text, as_html in shown:
        if "alert" in text or "evil.example" in text:
            assert not as_html, (kind, text)
            assert not re.search(r"(?<!\\)<(script|img)", text), (kind, text)
            assert not re.search(r"(?<!\\)\]\((?:javascript|http|evil)", text), (kind, text)  # md_model_text keeps lists, not links
