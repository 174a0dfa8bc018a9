"""PDF pages -> text: pdfium first, pypdf as the fallback, within the page-content and character limits.

pdfium: on squad36 and a crafted 10-Q it is 5-15x faster than pypdf (bench/RESULTS.md, "PDF readers"),
keeps a table row on one line, and reads real 10-Qs where pypdf stops at its 100,000-element array
limit. pypdf is the fallback for files pdfium refuses to open, and parses the page tree for the
decompressed-size check (`_StreamInspector`) either way.
"""
from __future__ import annotations

import io
import logging
import re
import zlib
from typing import Callable

from core.documents import DocumentError, ExtractionLimits, PageText, ProgressCallback, check_chars

log = logging.getLogger(__name__)

# A PDF whose pages average fewer characters than this, and whose pages are mostly images, is a scan.
MIN_TEXT_CHARS_PER_PAGE = 20


def pdf_pages(name: str, data: bytes, progress: ProgressCallback | None, limits: ExtractionLimits) -> tuple[list[PageText], str]:
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
        check_chars(name, chars, limits)
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
