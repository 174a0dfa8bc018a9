"""Bytes -> pages, and every bad file the issue lists gets a clear message."""
import pytest

from core.documents import DocumentError, extract_document, safe_filename
from tests.pdfs import encrypt, make_pdf, make_scanned_pdf

TEXT = "The Studio keeps every chunk with its page number. " * 5


def test_pdf_pages_keep_their_numbers():
    document = extract_document("report.pdf", make_pdf(["Alpha page one. " * 5, "Beta page two. " * 5]))
    assert [page.number for page in document.pages] == [1, 2]
    assert "Alpha" in document.pages[0].text and "Beta" in document.pages[1].text
    assert document.kind == "pdf" and len(document.sha256) == 64


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("empty.pdf", b"", r"is empty \(0 bytes\)"),
        ("fake.pdf", b"just some text pretending to be a PDF", "is not a PDF"),
        ("image.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "looks like PNG image"),
        ("notes.exe", b"MZ\x90\x00", "unsupported file type"),
        ("binary.txt", b"\x00\x01\x02\x03" * 10, "not text"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(name, data, expected):
    with pytest.raises(DocumentError, match=expected):
        extract_document(name, data)


def test_truncated_pdf_is_reported_as_damaged():
    data = make_pdf([TEXT] * 3)
    with pytest.raises(DocumentError, match="damaged or truncated|no page could be read|no text layer"):
        extract_document("cut.pdf", data[: len(data) // 3])


def test_scanned_pdf_asks_for_ocr():
    with pytest.raises(DocumentError, match="OCR"):
        extract_document("scan.pdf", make_scanned_pdf())


def test_pdf_with_a_real_password_is_refused():
    with pytest.raises(DocumentError, match="password-protected"):
        extract_document("secret.pdf", encrypt(make_pdf([TEXT]), user_password="hunter2"))


def test_pdf_encrypted_with_an_empty_password_opens():
    document = extract_document("restricted.pdf", encrypt(make_pdf([TEXT]), user_password=""))
    assert "chunk with its page number" in document.pages[0].text


def test_three_hundred_pages_report_progress():
    seen = []
    document = extract_document("big.pdf", make_pdf([f"Page {i} talks about topic {i}. " * 4 for i in range(300)]),
                                progress=lambda done, total: seen.append((done, total)))
    assert len(document.pages) == 300
    assert seen[-1] == (300, 300) and len(seen) == 300


def test_text_and_markdown_decode():
    assert extract_document("a.md", "# Titel\n\nÜber uns".encode()).pages[0].text.startswith("# Titel")
    assert "café" in extract_document("b.txt", "café".encode("cp1252")).pages[0].text


def test_docx_is_read():
    import io

    import docx

    document = docx.Document()
    document.add_paragraph("Quarterly revenue grew by twelve percent.")
    buffer = io.BytesIO()
    document.save(buffer)
    assert "twelve percent" in extract_document("q.docx", buffer.getvalue()).pages[0].text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("..\\..\\windows\\evil.pdf", "evil.pdf"),
        ("Rapport annuel été 2024.pdf", "Rapport annuel été 2024.pdf"),
        ("..", "unnamed"),
        ("/abs/path/with spaces/file name.txt", "file name.txt"),
        ("bad\x00name\n.txt", "badname.txt"),
    ],
)
def test_file_names_cannot_escape(raw, expected):
    assert safe_filename(raw) == expected
