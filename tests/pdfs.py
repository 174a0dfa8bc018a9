"""PDFs made by the tests (fpdf2 writes them, pypdf encrypts them): good, bad and awkward ones."""
from __future__ import annotations

import io
from datetime import datetime, timezone

from fpdf import FPDF


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))  # fixed timestamp: the same pages give the same bytes (the duplicate tests rely on it)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_scanned_pdf(page_count: int = 2) -> bytes:
    """Pages with a drawing but no text layer, like a scan."""
    pdf = FPDF()
    for _ in range(page_count):
        pdf.add_page()
        pdf.rect(20, 20, 150, 200, style="F")
    return bytes(pdf.output())


def encrypt(data: bytes, user_password: str, owner_password: str = "owner-secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def raw_pdf(page_contents: list[bytes], page_extra: bytes = b"", compress: bool = True) -> bytes:
    """A hand-written PDF (Helvetica, one content stream per page) with a correct xref table.

    `page_extra` is spliced into every page dictionary: crafted objects (a huge array) go there.
    """
    import zlib

    objects: list[bytes] = []
    count = len(page_contents)
    font_id = 3
    first_page = 4
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count)
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, content in enumerate(page_contents):
        stream_id = first_page + 2 * i + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R %s >>" % (font_id, stream_id, page_extra)
        )
        data = zlib.compress(content, 9) if compress else content
        flate = b"/Filter /FlateDecode " if compress else b""
        objects.append(b"<< " + flate + b"/Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_ops(lines: list[str], size: int = 11) -> bytes:
    """Content stream showing one line of text per entry, top to bottom."""
    body = [b"BT /F1 %d Tf 14 TL 72 740 Td" % size]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1", "replace")
        body.append(b"(" + escaped + b") Tj T*")
    body.append(b"ET")
    return b"\n".join(body)


def make_deflate_bomb(pages: int = 1, megabytes: int = 40) -> bytes:
    """Pages whose few-KB deflated content unpacks to `megabytes` MB (a readable line, then padding)."""
    padding = b"0 0 m\n" * (megabytes * 2**20 // 6)
    return raw_pdf([text_ops(["Quarterly report, page with a bomb."]) + b"\n" + padding for _ in range(pages)])


def make_huge_array_pdf(elements: int = 150_000) -> bytes:
    """Readable text, but every page dictionary holds an array past pypdf's 100,000-element limit
    ("Reached maximum array element count", as some real 10-Q filings do)."""
    filler = b"/PieceInfo [" + b"0 " * elements + b"]"
    return raw_pdf([text_ops(["Net revenue for the quarter was 13,507 million dollars.", "Risk factors follow below."])],
                   page_extra=filler)


def make_low_text_pdf(pages: int = 300, text: str = "Form 12 p.") -> bytes:
    """Many pages with ~12 characters each and a real text layer (a long form, not a scan)."""
    return raw_pdf([text_ops([f"{text}{i}"]) for i in range(pages)])


def make_image_scan_pdf(pages: int = 2) -> bytes:
    """Pages that are only a raster image, like a scanner's output."""
    from PIL import Image

    pdf = FPDF()
    image = Image.new("L", (200, 260), color=200)
    for _ in range(pages):
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=180)
    return bytes(pdf.output())


TEN_Q_TABLE = [
    ("", "Three Months Ended", "", ""),
    ("(in millions)", "June 29, 2024", "July 1, 2023", "Change"),
    ("Products", "$ 61,564", "$ 60,584", "2 %"),
    ("Services", "20,907", "19,821", "5 %"),
    ("Total net sales", "$ 85,777", "$ 81,797", "5 %"),
]


def make_ten_q_pdf(risk_pages: int = 3) -> bytes:
    """A 10-Q-like filing: cover page, contents, risk factors, and a financial table with units in its header."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "UNITED STATES SECURITIES AND EXCHANGE COMMISSION\nWashington, D.C. 20549\nFORM 10-Q\n"
                         "QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d)\nExample Devices Inc.")
    pdf.add_page()
    pdf.multi_cell(0, 6, "TABLE OF CONTENTS\nPart I Financial Information ..... 3\nItem 1A Risk Factors ..... 4")
    for number in range(risk_pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Item 1A. Risk Factors (part {number + 1}). The Company's operations depend on suppliers in "
                             "several countries; a disruption could reduce net sales. " * 6)
    pdf.add_page()
    pdf.multi_cell(0, 6, "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)")
    for row in TEN_Q_TABLE:
        for position, cell in enumerate(row):
            pdf.cell(60 if position == 0 else 40, 7, cell, align="L" if position == 0 else "R")
        pdf.ln(7)
    return bytes(pdf.output())
