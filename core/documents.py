"""Bytes -> pages of text, with errors that tell the user what is wrong and what to do."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Callable

from core.errors import StudioError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 200 * 1024 * 1024  # matches .streamlit/config.toml maxUploadSize (MB)
MAX_PAGES = 5000
SUPPORTED_SUFFIXES = (".pdf", ".txt", ".md", ".markdown", ".docx")
# A PDF whose pages average fewer characters than this has no usable text layer (scanned images).
MIN_TEXT_CHARS_PER_PAGE = 20

ProgressCallback = Callable[[int, int], None]  # (pages done, pages total)


class DocumentError(StudioError):
    """One file could not be read; the message names the file and the remedy."""


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

    @property
    def char_count(self) -> int:
        return sum(len(page.text) for page in self.pages)


def safe_filename(name: str) -> str:
    """Keep a display name that can never escape a folder: no directories, no `..`, no control characters.

    Unicode letters and spaces are kept because users recognise their own file names.
    """
    name = unicodedata.normalize("NFC", name or "")
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"/\\|?*')
    base = base.strip().lstrip(".").strip()
    base = re.sub(r"\s+", " ", base)
    if not base:
        base = "unnamed"
    return base[:200]


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


def extract_document(name: str, data: bytes, progress: ProgressCallback | None = None) -> ExtractedDocument:
    """Read one uploaded file. Raises DocumentError with a clear message for every bad case."""
    name = safe_filename(name)
    kind = suffix_kind(name)
    if len(data) == 0:
        raise DocumentError(f"“{name}” is empty (0 bytes). Check the file and upload it again.")
    if len(data) > MAX_FILE_BYTES:
        raise DocumentError(
            f"“{name}” is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB. Split it into smaller files."
        )
    sniffed = sniff_kind(data)
    if kind == "pdf":
        if sniffed != "pdf":
            raise DocumentError(f"“{name}” is named .pdf but is not a PDF (it looks like {sniffed}). Export it as a real PDF.")
        pages = _pdf_pages(name, data, progress)
    elif kind == "docx":
        if not sniffed.startswith("zip"):
            raise DocumentError(f"“{name}” is named .docx but is not a Word document (it looks like {sniffed}).")
        pages = _docx_pages(name, data)
    else:
        if sniffed != "text":
            raise DocumentError(f"“{name}” is named .{kind} but contains {sniffed}, not text.")
        pages = (PageText(1, _decode_text(name, data)),)
    if not any(page.text.strip() for page in pages):
        raise DocumentError(f"“{name}” contains no text. Check that it is the right file.")
    return ExtractedDocument(
        name=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), pages=tuple(pages)
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


def _pdf_pages(name: str, data: bytes, progress: ProgressCallback | None) -> list[PageText]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

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
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, OSError, EOFError) as error:
        raise DocumentError(f"“{name}” is damaged or truncated and cannot be read ({error}). Re-export or re-download it.") from error
    if total == 0:
        raise DocumentError(f"“{name}” has no pages.")
    if total > MAX_PAGES:
        raise DocumentError(f"“{name}” has {total} pages; the limit is {MAX_PAGES}. Split it into smaller files.")
    pages: list[PageText] = []
    failed = 0
    for index, page in enumerate(reader.pages):
        try:
            text = page.extract_text() or ""
        except FileNotDecryptedError as error:
            raise DocumentError(f"“{name}” is password-protected. Upload an unprotected copy.") from error
        except Exception as error:  # one broken page must not lose the rest of the document
            log.warning("%s page %d: %s", name, index + 1, error)
            failed += 1
            text = ""
        pages.append(PageText(index + 1, _clean_pdf_text(text)))
        if progress:
            progress(index + 1, total)
    if failed == total:
        raise DocumentError(f"“{name}” is damaged: no page could be read. Re-export or re-download it.")
    chars = sum(len(page.text.strip()) for page in pages)
    if chars < MIN_TEXT_CHARS_PER_PAGE * total:
        raise DocumentError(
            f"“{name}” has no text layer ({chars} characters on {total} pages); it looks scanned. "
            "Run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and upload the result."
        )
    return pages


def _clean_pdf_text(text: str) -> str:
    # Rejoin words hyphenated across line breaks and drop trailing spaces; keep paragraph breaks.
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"[ \t]{2,}", " ", text)  # pypdf pads justified lines with runs of spaces
    return text.strip()


def _docx_pages(name: str, data: bytes) -> list[PageText]:
    try:
        import docx
    except ImportError as error:  # pragma: no cover - python-docx is in requirements
        raise DocumentError("DOCX support needs python-docx; run `make install`.") from error
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:
        raise DocumentError(f"“{name}” is not a readable Word document ({error}). Save it again as .docx.") from error
    text = "\n\n".join(paragraph.text for paragraph in document.paragraphs if paragraph.text.strip())
    return [PageText(1, text)]
