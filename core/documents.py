"""Bytes -> pages of text, with errors that tell the user what is wrong and what to do.

Reading is bounded: `extract_document_bounded` reads a file in a worker process (forkserver, so
the app's threads and models are never forked) with a wall-time budget, and `extract_document`
itself caps decompressed bytes per page and characters per file (`ExtractionLimits`). A hostile
or broken file costs at most its budget and never takes the app or a batch down with it.
"""
from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
import types
import unicodedata
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Union

from core.errors import StudioError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 200 * 1024 * 1024  # matches .streamlit/config.toml maxUploadSize (MB)
MAX_PAGES = 5000
MAX_NAME_CHARS = 200
SUPPORTED_SUFFIXES = (".pdf", ".txt", ".md", ".markdown", ".docx")
# A PDF whose pages average fewer characters than this, and whose pages are mostly images, is a scan.
MIN_TEXT_CHARS_PER_PAGE = 20

ProgressCallback = Callable[[int, int], None]  # (pages done, pages total)
Source = Union[bytes, Path]  # the bytes of an upload, or a file on disk read by the worker itself


class DocumentError(StudioError):
    """One file could not be read; the message names the file and the remedy."""


@dataclass(frozen=True)
class ExtractionLimits:
    """What reading one file may cost. Each limit's message names it and how to raise it."""

    seconds_per_file: float = field(
        default=60.0,
        metadata={"help": "wall time to read one file, in a worker process that is stopped at the limit "
                          "(squad36 PDFs take 0.01-0.1 s each; a 72-page 10-Q about 2 s)", "flag": "--read-seconds"},
    )
    max_page_stream_mb: float = field(
        default=16.0,
        metadata={"help": "decompressed content per PDF page, in MB (a text page holds 2-200 KB; "
                          "a deflate bomb holds hundreds of MB in a few KB)", "flag": "--max-page-mb"},
    )
    max_total_chars: int = field(
        default=20_000_000,
        metadata={"help": "characters of text per file (5,000 dense pages hold about 15 million)", "flag": "--max-chars"},
    )
    max_memory_mb: int = field(
        default=4096,
        metadata={"help": "address space of the reading process, in MB (a 200 MB PDF reads in under 1 GB; "
                          "a zip or XML bomb would take the machine's RAM)", "flag": "--max-memory-mb"},
    )
    max_file_mb: int = field(default=MAX_FILE_BYTES // 2**20, metadata={"help": "size of one file, in MB"})
    max_pages: int = field(default=MAX_PAGES, metadata={"help": "pages of one PDF"})

    def validate(self) -> None:
        if not 1 <= self.seconds_per_file <= 3600:
            raise StudioError(f"Read time limit {self.seconds_per_file} s is out of range; use 1 to 3600 seconds.")
        if not 0.1 <= self.max_page_stream_mb <= 4096:
            raise StudioError(f"Page content limit {self.max_page_stream_mb} MB is out of range; use 0.1 to 4096 MB.")
        if not 1000 <= self.max_total_chars <= 500_000_000:
            raise StudioError(f"Character limit {self.max_total_chars} is out of range; use 1,000 to 500,000,000.")
        if not 256 <= self.max_memory_mb <= 1_048_576:
            raise StudioError(f"Reader memory limit {self.max_memory_mb} MB is out of range; use at least 256 MB.")
        if not 1 <= self.max_file_mb <= 4096 or not 1 <= self.max_pages <= 100_000:
            raise StudioError("File size and page limits must be positive (at most 4096 MB and 100,000 pages).")

    @staticmethod
    def how_to_raise(name: str) -> str:
        flag = next(f.metadata.get("flag") for f in fields(ExtractionLimits) if f.name == name)
        return f"raise it with `{flag}` in the CLI or under “Reading limits” on the Documents page"


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based page number (1 for formats without pages)
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    name: str
    kind: str  # pdf | txt | md | docx
    sha256: str
    size_bytes: int
    pages: tuple[PageText, ...]
    reader: str = ""  # which library read it (pdfium, pypdf, text, docx)

    @property
    def char_count(self) -> int:
        return sum(len(page.text) for page in self.pages)


def safe_filename(name: str) -> str:
    """Keep a display name that can never escape a folder: no directories, no `..`, no control characters.

    Unicode letters and spaces are kept because users recognise their own file names. A long name
    is shortened in its stem, so its extension (what says how to read it) survives.
    """
    name = unicodedata.normalize("NFC", name or "")
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"/\\|?*')
    base = base.strip().lstrip(".").strip()
    base = re.sub(r"\s+", " ", base)
    if not base:
        base = "unnamed"
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            base = stem[: MAX_NAME_CHARS - len(suffix) - 1].rstrip() + "." + suffix
        else:
            base = base[:MAX_NAME_CHARS]
    return base


def sniff_kind(data: bytes) -> str:
    """What the bytes look like, whatever the file name says."""
    head = data[:8]
    if head.startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip (e.g. DOCX/XLSX)"
    if head.startswith(b"\x89PNG"):
        return "PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG image"
    if head.startswith(b"GIF8"):
        return "GIF image"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "legacy Office document"
    if b"\x00" in data[:4096]:
        return "binary data"
    return "text"


def suffix_kind(name: str) -> str:
    lower = name.lower()
    for suffix, kind in ((".pdf", "pdf"), (".txt", "txt"), (".md", "md"), (".markdown", "md"), (".docx", "docx")):
        if lower.endswith(suffix):
            return kind
    raise DocumentError(
        f"“{name}”: unsupported file type. Upload PDF, TXT, Markdown or DOCX files ({', '.join(SUPPORTED_SUFFIXES)})."
    )


def check_size(name: str, size: int, limits: ExtractionLimits) -> None:
    """Refuse an empty or oversized file from its size alone, before a byte of it is read."""
    if size == 0:
        raise DocumentError(f"“{name}” is empty (0 bytes). Check the file and upload it again.")
    if size > limits.max_file_mb * 2**20:
        raise DocumentError(
            f"“{name}” is {size / 2**20:.0f} MB; the limit is {limits.max_file_mb} MB. Split it into smaller files."
        )


def extract_document(
    name: str, data: bytes, progress: ProgressCallback | None = None, limits: ExtractionLimits | None = None
) -> ExtractedDocument:
    """Read one file's bytes in this process. Raises DocumentError with a clear message for every bad case.

    The page-content and character limits apply here; the wall-time limit needs a process that can be
    stopped, so ingestion calls `extract_document_bounded`.
    """
    limits = limits or ExtractionLimits()
    name = safe_filename(name)
    kind = suffix_kind(name)
    check_size(name, len(data), limits)
    sniffed = sniff_kind(data)
    reader = kind
    if kind == "pdf":
        if sniffed != "pdf":
            raise DocumentError(f"“{name}” is named .pdf but is not a PDF (it looks like {sniffed}). Export it as a real PDF.")
        pages, reader = _pdf_pages(name, data, progress, limits)
    elif kind == "docx":
        if not sniffed.startswith("zip"):
            raise DocumentError(f"“{name}” is named .docx but is not a Word document (it looks like {sniffed}). "
                                "Open it in Word and save it again as .docx.")
        pages = _docx_pages(name, data, limits)
    else:
        if sniffed != "text":
            raise DocumentError(f"“{name}” is named .{kind} but contains {sniffed}, not text. "
                                "Check that it is the right file, or export the document as PDF, TXT or DOCX.")
        pages = (PageText(1, _decode_text(name, data)),)
        _check_chars(name, len(pages[0].text), limits)
    if not any(page.text.strip() for page in pages):
        raise DocumentError(f"“{name}” contains no text. Check that it is the right file.")
    return ExtractedDocument(
        name=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), pages=tuple(pages), reader=reader
    )


def _check_chars(name: str, chars: int, limits: ExtractionLimits) -> None:
    if chars > limits.max_total_chars:
        raise DocumentError(
            f"“{name}” holds more than {limits.max_total_chars:,} characters of text (the limit `max_total_chars`). "
            f"Split it into smaller files, or {ExtractionLimits.how_to_raise('max_total_chars')}."
        )


def _decode_text(name: str, data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
                continue
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    # Legacy single-byte text (Windows-1252) is common; decode it rather than refuse, but say so in the log.
    log.warning("%s is not UTF-8; decoded as Windows-1252", name)
    return data.decode("cp1252", errors="replace")


# ---------------------------------------------------------------- PDF
# pdfium first: on squad36 and a crafted 10-Q it is 5-15x faster than pypdf (bench/RESULTS.md,
# "PDF readers"), keeps a table row on one line, and reads real 10-Qs where pypdf stops at its
# 100,000-element array limit. pypdf is the fallback for files pdfium refuses to open.
def _pdf_pages(name: str, data: bytes, progress: ProgressCallback | None, limits: ExtractionLimits) -> tuple[list[PageText], str]:
    inspector = _StreamInspector(data)
    try:
        pages, images = _pdfium_pages(name, data, progress, limits, inspector)
        reader = "pdfium"
    except _ReaderFailed as pdfium_failure:
        log.info("%s: pdfium could not open it (%s); trying pypdf", name, pdfium_failure)
        try:
            pages, images = _pypdf_pages(name, data, progress, limits, inspector)
        except _ReaderFailed as pypdf_failure:
            log.warning("%s: neither PDF reader could open it: pdfium: %s; pypdf: %s", name, pdfium_failure, pypdf_failure)
            raise DocumentError(
                f"“{name}” is damaged or truncated and cannot be read ({pypdf_failure.plain}). "
                "Re-export or re-download it, or save it again with a PDF tool (“Print to PDF”)."
            ) from None
        reader = "pypdf"
    _check_text_layer(name, pages, images)
    return pages, reader


class _ReaderFailed(Exception):
    """A PDF library could not open the file at all; `plain` says why in words a user can act on."""

    def __init__(self, detail: str, plain: str):
        super().__init__(detail)
        self.plain = plain


def _check_pages(name: str, total: int, limits: ExtractionLimits) -> None:
    if total == 0:
        raise DocumentError(f"“{name}” has no pages.")
    if total > limits.max_pages:
        raise DocumentError(f"“{name}” has {total} pages; the limit is {limits.max_pages}. Split it into smaller files.")


def _check_text_layer(name: str, pages: list[PageText], images: list[bool]) -> None:
    """A scan is pages of images with (almost) no text; few characters alone is not a scan.

    A 4,990-page form with ~12 characters a page has a text layer and is read as it is.
    """
    total = len(pages)
    chars = sum(len(page.text.strip()) for page in pages)
    if chars >= MIN_TEXT_CHARS_PER_PAGE * total:
        return
    image_pages = sum(1 for page, has_image in zip(pages, images) if has_image and len(page.text.strip()) < MIN_TEXT_CHARS_PER_PAGE)
    if image_pages * 2 >= total:
        raise DocumentError(
            f"“{name}” has no text layer: {image_pages} of its {total} pages are images with almost no text "
            f"({chars} characters in all); it looks scanned. "
            "Run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and upload the result."
        )
    if chars == 0:
        raise DocumentError(
            f"“{name}” has no text on its {total} page(s) and no images either. Check that it is the right file; "
            "if it is a scan saved as drawings, run OCR on it first (for example `ocrmypdf in.pdf out.pdf`)."
        )
    log.info("%s: %d characters on %d pages, few images; read as it is", name, chars, total)


class _StreamInspector:
    """Decompressed size of each page's content streams, bounded: zlib stops at the limit.

    pdfium offers no access to raw streams, so pypdf parses the page tree (lazily, no text
    extraction). If pypdf cannot parse the file (its own limits, damage), the check is skipped
    and the wall-time budget is the guard.
    """

    def __init__(self, data: bytes):
        self.data = data
        self._pages = None
        self._broken = False

    def _page(self, index: int):
        if self._broken:
            return None
        try:
            if self._pages is None:
                from pypdf import PdfReader

                reader = PdfReader(io.BytesIO(self.data))
                if reader.is_encrypted:
                    reader.decrypt("")
                self._pages = reader.pages
            return self._pages[index]
        except Exception as error:  # any parse trouble: skip the check, never fail the read on it
            log.debug("page stream inspection off: %s", error)
            self._broken = True
            return None

    def page_bytes(self, index: int, limit: int) -> int:
        """Decompressed bytes of the page's content, or a number above `limit` once it is passed."""
        from pypdf import apply_configuration

        # Tight parse limits: the check must stay cheap; on a huge array it gives up in milliseconds
        # (pypdf's own 100,000 elements cost ~1 s of parsing) and leaves the guard to the wall time.
        with apply_configuration(array_maximum_element_count=5_000, dictionary_maximum_element_count=5_000):
            return self._page_bytes(index, limit)

    def _page_bytes(self, index: int, limit: int) -> int:
        page = self._page(index)
        if page is None:
            return 0
        try:
            contents = page.get("/Contents")
            if contents is None:
                return 0
            contents = contents.get_object()
            streams = [item.get_object() for item in contents] if isinstance(contents, list) else [contents]
            total = 0
            for stream in streams:
                total += _decoded_size(stream, limit - total + 1)
                if total > limit:
                    return total
            return total
        except Exception as error:
            log.debug("page %d stream inspection skipped: %s", index + 1, error)
            return 0


def _decoded_size(stream, budget: int) -> int:
    raw = getattr(stream, "_data", b"") or b""
    filters = stream.get("/Filter")
    names = [str(f) for f in filters] if isinstance(filters, list) else ([str(filters)] if filters else [])
    if names[:1] != ["/FlateDecode"]:
        return len(raw)
    inflater = zlib.decompressobj()
    size = 0
    chunk = raw
    while chunk and size <= budget:
        out = inflater.decompress(chunk, 1 << 20)
        size += len(out)
        chunk = inflater.unconsumed_tail
        if not out:
            break
    return size


def _check_page_stream(name: str, number: int, inspector: _StreamInspector, limits: ExtractionLimits) -> None:
    limit = int(limits.max_page_stream_mb * 2**20)
    size = inspector.page_bytes(number - 1, limit)
    if size > limit:
        raise DocumentError(
            f"“{name}” page {number} unpacks to more than {limits.max_page_stream_mb:g} MB of page content "
            f"(the limit `max_page_stream_mb`; ordinary pages hold under 1 MB). It may be a decompression bomb. "
            f"If you trust the file, {ExtractionLimits.how_to_raise('max_page_stream_mb')}."
        )


def _pdfium_pages(
    name: str, data: bytes, progress: ProgressCallback | None, limits: ExtractionLimits, inspector: _StreamInspector
) -> tuple[list[PageText], list[bool]]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentError(
                f"“{name}” is password-protected. Open it with its password, save an unprotected copy, and upload that."
            ) from None
        raise _ReaderFailed(str(error), "the file structure is broken") from error
    try:
        def read_page(index: int) -> tuple[str, bool]:
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                text = textpage.get_text_bounded()
                textpage.close()
                return text, next(iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2)), None) is not None
            finally:
                page.close()

        return _collect_pages(name, len(pdf), read_page, (pdfium.PdfiumError,), progress, limits, inspector)
    finally:
        pdf.close()


def _collect_pages(
    name: str, total: int, read_page: Callable[[int], tuple[str, bool]], broken: tuple[type[BaseException], ...],
    progress: ProgressCallback | None, limits: ExtractionLimits, inspector: _StreamInspector,
) -> tuple[list[PageText], list[bool]]:
    """Every page's (cleaned) text and whether it shows an image, within the limits, with either reader.

    A page whose reader raises one of `broken` is kept empty: one broken page must not lose the rest of
    the document; only a file with no readable page at all is refused.
    """
    _check_pages(name, total, limits)
    pages: list[PageText] = []
    images: list[bool] = []
    chars = 0
    failed = 0
    for index in range(total):
        _check_page_stream(name, index + 1, inspector, limits)
        try:
            text, has_image = read_page(index)
        except DocumentError:
            raise
        except broken as error:
            log.warning("%s page %d: %s", name, index + 1, error)
            failed += 1
            text, has_image = "", False
        text = _clean_pdf_text(text)
        chars += len(text)
        _check_chars(name, chars, limits)
        pages.append(PageText(index + 1, text))
        images.append(has_image)
        if progress:
            progress(index + 1, total)
    if failed == total:
        raise DocumentError(f"“{name}” is damaged: no page could be read. Re-export or re-download it.")
    return pages, images


def _pypdf_pages(
    name: str, data: bytes, progress: ProgressCallback | None, limits: ExtractionLimits, inspector: _StreamInspector
) -> tuple[list[PageText], list[bool]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An empty user password (owner-only restrictions) opens with cryptography installed.
            try:
                opened = reader.decrypt("")
            except Exception as error:  # pypdf raises DependencyError, NotImplementedError, ...
                raise DocumentError(f"“{name}” is encrypted in a way that cannot be opened here ({error}).") from error
            if not opened:
                raise DocumentError(
                    f"“{name}” is password-protected. Open it with its password, save an unprotected copy, and upload that."
                )
        total = len(reader.pages)
    except DocumentError:
        raise
    except LimitReachedError as error:  # "Reached maximum array element count": a reader limit, never shown raw
        raise _ReaderFailed(str(error), "it holds a structure larger than the PDF reader accepts") from error
    except Exception as error:  # PdfReadError, PdfStreamError, ValueError, ...: damage in words, details in the log
        raise _ReaderFailed(str(error), "the file structure is broken") from error
    def read_page(index: int) -> tuple[str, bool]:
        page = reader.pages[index]
        try:
            text = page.extract_text(extraction_mode="layout") or ""
            xobjects = (page.get("/Resources") or {}).get("/XObject") or {}
            return text, any(xobjects[key].get_object().get("/Subtype") == "/Image" for key in xobjects)
        except FileNotDecryptedError as error:
            raise DocumentError(f"“{name}” is password-protected. Upload an unprotected copy.") from error

    return _collect_pages(name, total, read_page, (Exception,), progress, limits, inspector)


_PDF_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _clean_pdf_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # pdfium marks a hyphen it broke a line at with U+0002 or U+FFFE: rejoin the word
    text = re.sub(r"(\w)[\x02\ufffe]\n?(\w)", r"\1\2", text)
    text = _PDF_CONTROL.sub("", text)
    # Rejoin words hyphenated across line breaks and drop trailing spaces; keep paragraph breaks.
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"[ \t]{2,}", " ", text)  # justified lines and layout mode pad with runs of spaces
    return text.strip()


def _docx_pages(name: str, data: bytes, limits: ExtractionLimits) -> list[PageText]:
    try:
        import docx
    except ImportError as error:  # pragma: no cover - python-docx is in requirements
        raise DocumentError("DOCX support needs python-docx; run `make install`.") from error
    try:
        document = docx.Document(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as error:
        if "allocate" in str(error):  # lxml's words for running out of memory (the reader's `max_memory_mb`)
            raise MemoryError(str(error)) from error
        raise DocumentError(f"“{name}” is not a readable Word document ({error}). Save it again as .docx.") from error
    text = "\n\n".join(paragraph.text for paragraph in document.paragraphs if paragraph.text.strip())
    _check_chars(name, len(text), limits)
    return [PageText(1, text)]


# ---------------------------------------------------------------- the bounded reader (a worker process per file)
_CONTEXT = None
_START_LOCK = threading.Lock()


def _worker_context():
    """forkserver where the platform has it: a fresh, small server process forks each worker, so the
    app's threads, locks and loaded models are never copied into it (a plain fork of Streamlit is unsafe).
    """
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            # Import the readers once in the server; each worker then starts in ~10 ms. No __main__:
            # the app's entry script must not run again in the server.
            context.set_forkserver_preload(["core.documents", "pypdfium2", "pypdf", "docx"])
        else:
            context = multiprocessing.get_context("spawn")
        _CONTEXT = context
    return _CONTEXT


def _start_without_main(worker) -> None:
    """Start the worker without re-running the app's entry script in it.

    multiprocessing re-imports `__main__` in every forkserver/spawn child; under `streamlit run`
    that is Streamlit's CLI (about 1 s of imports per file read). The worker needs only
    core.documents, so the parent shows it an empty `__main__` for the moment of the start.
    """
    with _START_LOCK:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            worker.start()
        finally:
            if real is not None:
                sys.modules["__main__"] = real


def _worker_main(conn, name: str, source: Source, limits: ExtractionLimits) -> None:
    """Runs in the worker: read (from disk if given a path), extract, send ("ok", document) or ("error", message)."""
    try:
        try:
            import resource

            cap = limits.max_memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # a bomb fails here with MemoryError, not the machine
        except (ImportError, ValueError, OSError) as error:  # no such limit on this platform
            log.debug("reader memory limit not set: %s", error)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] > 0.2:  # a few messages a second, not one per page
                last[0] = now
                conn.send(("progress", done, total))

        if isinstance(source, Path):
            check_size(name, source.stat().st_size, limits)
            data = source.read_bytes()
        else:
            data = source
        conn.send(("ok", extract_document(name, data, progress, limits)))
    except DocumentError as error:
        conn.send(("error", str(error)))
    except MemoryError:
        conn.send(("error", f"“{name}” needs more than {limits.max_memory_mb} MB of memory to read (the limit `max_memory_mb`); "
                            f"it may be a zip or XML bomb. Split it into smaller files, or {ExtractionLimits.how_to_raise('max_memory_mb')}."))
    except Exception as error:  # a reader bug on one file: a message, never a traceback to the user
        log.exception("Reading %s failed", name)
        conn.send(("error", f"“{name}” could not be read ({type(error).__name__}). Re-export it as PDF, TXT or DOCX and try again."))
    finally:
        conn.close()


def extract_document_bounded(
    name: str, source: Source, progress: ProgressCallback | None = None, limits: ExtractionLimits | None = None
) -> ExtractedDocument:
    """Read one file in a worker process stopped after `limits.seconds_per_file`.

    `source` is the file's bytes or, better, its path: the worker reads it, so the caller never holds
    a batch in memory. Sizes are checked from the file system before anything is read.
    """
    limits = limits or ExtractionLimits()
    limits.validate()
    name = safe_filename(name)
    suffix_kind(name)
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
        except OSError as error:
            raise DocumentError(f"“{name}” cannot be opened ({error.strerror}). Check that the file exists.") from None
    else:
        size = len(source)
    check_size(name, size, limits)
    context = _worker_context()
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_main, args=(sender, name, source, limits), daemon=True, name=f"read {name[:40]}")
    _start_without_main(worker)
    sender.close()
    deadline = time.monotonic() + limits.seconds_per_file
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DocumentError(
                    f"“{name}” took longer than {limits.seconds_per_file:g} s to read (the limit `seconds_per_file`) "
                    "and was stopped; nothing of it was stored. It may be a decompression bomb, or just very large: "
                    f"split it into smaller files, or {ExtractionLimits.how_to_raise('seconds_per_file')}."
                )
            if not receiver.poll(min(remaining, 0.5)):
                continue
            try:
                message = receiver.recv()
            except EOFError:
                worker.join(5)
                raise DocumentError(
                    f"“{name}” crashed the reader (exit code {worker.exitcode}); nothing of it was stored. "
                    f"The file is probably damaged, or needed more than {limits.max_memory_mb} MB (`max_memory_mb`): "
                    "re-export or re-download it."
                ) from None
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
            elif message[0] == "ok":
                return message[1]
            else:
                raise DocumentError(message[1])
    finally:
        receiver.close()
        if worker.is_alive():
            worker.kill()
        worker.join(5)
