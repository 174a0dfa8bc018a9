"""Bytes -> pages of text, with errors that tell the user what is wrong and what to do.

Reading is bounded: `extract_document` caps decompressed bytes per page and characters per file
(`ExtractionLimits`), and `core.bounded_reader.extract_document_bounded` runs it in a worker process
(forkserver, so the app's threads and models are never forked) with a wall-time and memory budget.
A hostile or broken file costs at most its budget and never takes the app or a batch down with it.
This module names files and checks them, reads text and DOCX; PDFs are read by core/pdf_reader.py.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Union

from core.errors import StudioError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 200 * 1024 * 1024  # matches .streamlit/config.toml maxUploadSize (MB)
MAX_PAGES = 5000
MAX_NAME_CHARS = 200
SUPPORTED_SUFFIXES = (".pdf", ".txt", ".md", ".markdown", ".docx")

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
        from core.pdf_reader import pdf_pages

        pages, reader = pdf_pages(name, data, progress, limits)
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
        check_chars(name, len(pages[0].text), limits)
    if not any(page.text.strip() for page in pages):
        raise DocumentError(f"“{name}” contains no text. Check that it is the right file.")
    return ExtractedDocument(
        name=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), pages=tuple(pages), reader=reader
    )


def check_chars(name: str, chars: int, limits: ExtractionLimits) -> None:
    """Refuse a file once its text passes `max_total_chars` (called as pages are read, not at the end)."""
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
    check_chars(name, len(text), limits)
    return [PageText(1, text)]
