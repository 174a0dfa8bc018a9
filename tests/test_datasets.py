"""Training rows: building, validation of uploads, split, save/load. No model needed."""
from __future__ import annotations

import json

import pytest

from core import datasets as D
from core.errors import StudioError
from core.knowledge import Chunk
from core.settings import get_workspace

PASSAGE = (
    "The 1973 oil crisis began in October 1973 when OAPEC proclaimed an oil embargo. "
    "By March 1974 the price of oil had risen from US$3 per barrel to nearly $12. "
    "The embargo caused an oil shock with many effects on global politics. "
    "However, the crisis also threatened economic growth and caused a recession in many countries."
)
CHUNKS = [(10 + i, f"doc{i}.pdf", Chunk(PASSAGE.replace("1973", str(1973 + i)), i + 1, i + 1, i)) for i in range(6)]


@pytest.fixture
def ws(tmp_path):
    return get_workspace(tmp_path / "ws")


def test_style_rows_follow_their_rule_and_link_to_chunks():
    rows = D.build_rows(CHUNKS, D.DatasetBuildSettings(kind="style", style="answer in 3 bullets, then one line of risks"))
    assert len(rows) == 6
    for row in rows:
        assert D.follows_style(row["output"], "bullets3_risk"), row["output"]
        assert row["source"]["chunk_id"] >= 10 and row["source"]["document"].startswith("doc") and row["source"]["page"] >= 1
        assert row["prompt"].startswith(row["instruction"]) and row["completion"] == row["output"]
        assert "bullet" not in row["instruction"].lower()  # the format is learned, not asked for
    assert rows[0]["output"].splitlines()[3].startswith("Risks: However")


def test_follows_style_is_strict():
    good = "- a\n- b\n- c\nRisks: d"
    assert D.follows_style(good, "bullets3_risk")
    assert D.follows_style("\n" + good + "\n\n", "bullets3_risk")
    assert not D.follows_style("- a\n- b\nRisks: d", "bullets3_risk")
    assert not D.follows_style(good + "\nmore", "bullets3_risk")
    assert not D.follows_style("The answer is a, b and c.", "bullets3_risk")
    assert D.follows_style("- a\n- b\n- c", "bullets3")
    assert D.follows_style("TL;DR: short", "tldr")
    assert D.detect_style_rule("TL;DR in one line") == "tldr"
    assert D.detect_style_rule("three bullets please") == "bullets3"


def test_qa_uses_the_model_seam_and_falls_back_when_the_reply_is_unusable():
    from core.datasets.build import _QA_PARSE

    replies = iter(["Q: When did it begin?\nA: October 1973", "I cannot do that"])
    assert _QA_PARSE.search("Question: What rose?\nAnswer: The price.")["a"] == "The price."
    rows = D.build_rows(CHUNKS[:2], D.DatasetBuildSettings(kind="qa", use_model=True), generate=lambda prompt: next(replies))
    assert rows[0]["instruction"] == "When did it begin?" and rows[0]["output"] == "October 1973"
    assert rows[0]["source"]["method"] == "model"
    fallback = [r for r in rows if r["source"]["method"] == "extractive"]
    assert fallback and fallback[0]["instruction"].startswith("What does the document say about")
    summary = D.build_rows(CHUNKS[:1], D.DatasetBuildSettings(kind="summary"))
    assert summary[0]["instruction"] == "Summarize in 3 bullets." and D.follows_style(summary[0]["output"], "bullets3")


def test_jsonl_upload_reports_line_numbered_problems():
    lines = [
        json.dumps({"instruction": "Say hi", "input": "", "output": "hi"}).encode(),
        json.dumps({"instruction": "No output here"}).encode(),
        json.dumps({"instruction": "Empty", "output": "   "}).encode(),
        b'{"instruction": "caf\xe9", "output": "latin-1 bytes"}',
        b"{not json",
        json.dumps({"instruction": "Say hi", "input": "", "output": "hi"}).encode(),  # duplicate of line 1
        json.dumps({"instruction": "Long " + "word " * 400, "output": "ok"}).encode(),
        b"",
    ]
    report = D.parse_upload("rows.jsonl", b"\n".join(lines), max_length=100)
    messages = dict(report.errors)
    assert "missing field 'output'" in messages[2]
    assert "empty output" in messages[3]
    assert "UTF-8" in messages[4]
    assert "JSON" in messages[5]
    assert report.duplicates == 1
    assert report.too_long == [7]
    assert len(report.rows) == 2 and not report.ok
    assert "2 valid rows" in report.summary() and "1 duplicates removed" in report.summary()


def test_csv_prompt_completion_upload_and_token_counter():
    data = "prompt,completion\nWhat is 2+2?,4\nName a colour,\n\"Multi, with comma\",yes\n".encode()
    report = D.parse_upload("rows.csv", data, max_length=3, count_tokens=lambda text: len(text.split()))
    assert report.errors == [(3, "empty output (completion)")]
    assert [r["completion"] for r in report.rows] == ["4", "yes"]
    assert report.rows[0]["instruction"] == "What is 2+2?" and report.rows[0]["output"] == "4"
    assert report.too_long == [2, 4]  # 4 words each > 3
    with pytest.raises(StudioError):
        D.parse_upload("rows.txt", b"x")


def test_split_is_seeded_and_deterministic():
    rows = [D.make_row(f"q{i}", "", f"a{i}") for i in range(50)]
    a = D.split_rows(rows, 0.2, seed=7)
    b = D.split_rows(rows, 0.2, seed=7)
    c = D.split_rows(rows, 0.2, seed=8)
    assert a == b and a != c
    assert len(a[0]) == 40 and len(a[1]) == 10
    assert not {r["instruction"] for r in a[0]} & {r["instruction"] for r in a[1]}


def test_save_load_list_round_trip(ws):
    rows = D.build_rows(CHUNKS, D.DatasetBuildSettings(kind="style"))
    info = D.save_dataset(ws, "style-1", rows, kind="style", style_rule="bullets3_risk", heldout_fraction=0.34, seed=1)
    assert (info.train_rows, info.heldout_rows) == (4, 2)
    assert [d.id for d in D.list_datasets(ws)] == ["style-1"]
    held = D.load_dataset_rows(ws, "style-1", "heldout")
    assert len(held) == 2 and set(held[0]) >= {"instruction", "input", "output", "prompt", "completion", "source"}
    assert D.dataset_meta(ws, "style-1")["style_rule"] == "bullets3_risk"
    assert (ws.datasets / "style-1" / "train.jsonl").exists()
    with pytest.raises(StudioError, match="No dataset"):
        D.load_dataset_rows(ws, "missing")
    with pytest.raises(StudioError, match="empty"):
        D.save_dataset(ws, "empty", [])
    with pytest.raises(StudioError, match="not allowed"):
        D.save_dataset(ws, "../evil", rows)
    with pytest.raises(StudioError, match="empty output"):
        D.save_dataset(ws, "bad", [{"instruction": "x", "output": ""}])
    D.delete_dataset(ws, "style-1")
    assert D.list_datasets(ws) == []


def test_capped_build_draws_from_every_document():
    from core.datasets import DatasetBuildSettings, build_rows, interleave_documents

    class Chunk:
        def __init__(self, text):
            self.text, self.page = text, 1

    text = ("The harbour bridge opened in the spring of that year after long delays. Engineers tested every cable twice over. "
            "The city painted the towers grey in the following winter.")
    chunks = [(i, "a.pdf", Chunk(text)) for i in range(10)] + [(10 + i, "b.pdf", Chunk(text)) for i in range(10)]
    assert [c[1] for c in interleave_documents(chunks)[:4]] == ["a.pdf", "b.pdf", "a.pdf", "b.pdf"]
    assert [c[0] for c in interleave_documents(chunks) if c[1] == "a.pdf"] == list(range(10))  # order kept
    rows = build_rows(chunks, DatasetBuildSettings(kind="summary", max_rows=4))
    assert {row["source"]["document"] for row in rows} == {"a.pdf", "b.pdf"}


def test_saving_under_an_existing_id_is_refused_unless_replace(tmp_path):
    ws = get_workspace(tmp_path)
    first = [D.make_row(f"Question {i}?", "", f"Answer {i}.") for i in range(10)]
    D.save_dataset(ws, "ds1", first)
    before = D.load_dataset_rows(ws, "ds1") + D.load_dataset_rows(ws, "ds1", "heldout")
    with pytest.raises(StudioError, match="already exists .*8 train \\+ 2 held-out.*replace"):
        D.save_dataset(ws, "ds1", first[:3])
    assert D.load_dataset_rows(ws, "ds1") + D.load_dataset_rows(ws, "ds1", "heldout") == before
    replaced = D.save_dataset(ws, "ds1", first[:3], replace=True)
    assert replaced.train_rows + replaced.heldout_rows == 3


def test_a_dataset_a_run_used_is_never_replaced(tmp_path):
    from core.storage import connect, transaction

    ws = get_workspace(tmp_path)
    rows = [D.make_row(f"Question {i}?", "", f"Answer {i}.") for i in range(10)]
    D.save_dataset(ws, "ds1", rows)
    digest = D.dataset_content_hash(ws, "ds1")
    assert D.dataset_meta(ws, "ds1")["content_sha256"] == digest
    with connect(ws) as conn, transaction(conn):  # the runs table as training creates it; one run on ds1
        conn.execute("CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL, created_at TEXT)")
        conn.execute("INSERT INTO runs VALUES ('crashrun', 'ds1', '2026-12-02')")
    with pytest.raises(StudioError, match="used by training run crashrun.*never replaced"):
        D.save_dataset(ws, "ds1", rows[:3], replace=True)
    assert D.dataset_content_hash(ws, "ds1") == digest


def test_cli_import_refuses_to_overwrite_and_says_how(tmp_path, capsys):
    import json as _json

    from core.cli import main

    ws_dir = tmp_path / "ws"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(_json.dumps({"instruction": f"Q{i}?", "output": f"A{i}."}) for i in range(6)))
    assert main(["--workspace", str(ws_dir), "dataset", "import", str(rows), "--out", "ds1"]) == 0
    assert main(["--workspace", str(ws_dir), "dataset", "import", str(rows), "--out", "ds1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["--workspace", str(ws_dir), "dataset", "import", str(rows), "--out", "ds1", "--replace"]) == 0


def tenq_chunks(tmp_path):
    from core.documents import extract_document
    from core.knowledge import ChunkingSettings, chunk_document
    from tests.tenq_pdf import make_10q_pdf

    pdf = make_10q_pdf(tmp_path / "northwind-10q.pdf")
    return [(i, pdf.name, c) for i, c in enumerate(chunk_document(extract_document(pdf.name, pdf.read_bytes()), ChunkingSettings()))]


def test_10q_style_rows_skip_boilerplate_and_keep_whole_sentences(tmp_path):
    skipped = []
    rows = D.build_rows(tenq_chunks(tmp_path), D.DatasetBuildSettings(kind="style"), skipped=skipped)
    assert rows and {r["source"]["page"] for r in rows} <= {5, 6, 8, 9}  # MD&A and risk factors, never the form pages
    reasons = {s["reason"] for s in skipped}
    assert {"cover page", "table of contents", "legal notice", "table of figures", "signature block"} <= reasons
    assert {s["page"] for s in skipped if s["reason"] == "cover page"} == {1}
    assert all(s["page"] == 10 for s in skipped if s["reason"] == "signature block")
    for row in rows:
        assert D.follows_style(row["output"], "bullets3_risk"), row["output"]
        assert "..." not in row["output"] and "…" not in row["output"]
        lines = row["output"].splitlines()
        assert all(line.endswith((".", '"', "”")) for line in lines), lines
        assert lines[3][len("Risks: "):].rstrip(".") in row["input"]  # the risk is a sentence of the passage
        assert "none stated" not in lines[3]
    qualities = [r["source"]["quality"] for r in rows]
    assert qualities == sorted(qualities, reverse=True)
    assert "chunks skipped" in D.skipped_summary(skipped) and "cover page" in D.skipped_summary(skipped)


def test_boilerplate_rules_and_short_forms():
    assert D.boilerplate_reason("Item 1. Financial Statements ........................ 3\nItem 2. Risk Factors ........ 9\n"
                                "Item 3. Controls .......... 12") == "table of contents"
    assert D.boilerplate_reason("Revenue 13,507 11,240\nCost of revenue 4,755 4,271\nNet income 3,118 2,479") == "table of figures"
    assert D.boilerplate_reason("Date: April 24, 2026 By: /s/ Helena Marquez\nHelena Marquez\nChief Executive Officer") == "signature block"
    assert D.boilerplate_reason(PASSAGE) is None
    long = ("Revenue for the first quarter of fiscal 2026 was $13,507 million, up 20% from $11,240 million a year earlier, "
            "driven by shipments of the Aurora accelerator to cloud service providers in North America and Europe.")
    assert D.short_form(long) == "Revenue for the first quarter of fiscal 2026 was $13,507 million, up 20% from $11,240 million a year earlier."
    assert D.short_form("One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                        "seventeen eighteen nineteen twenty twentyone twentytwo twentythree twentyfour twentyfive.") is None
    with pytest.raises(StudioError, match="no risk"):
        D.render_style(["The bridge opened in 1932 to traffic.", "It has eight lanes for cars.", "It is painted grey today.",
                        "Painters work in teams of forty."], "bullets3_risk")
