"""Retrieval quality on a real third-party set: all 36 squad36 PDFs, 180 gold questions, hit@5 >= 0.85."""
import json
import re

import pytest

from core.knowledge import RetrievalSettings, ingest_files, search_many
from tests.conftest import SQUAD

pytestmark = pytest.mark.slow


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def test_hit_at_5_on_squad36(tmp_path, real_embedder):
    from core.settings import get_workspace

    ws = get_workspace(tmp_path / "ws")
    pdfs = sorted((SQUAD / "docs").glob("*.pdf"))
    results = ingest_files(ws, "squad36", [(p.name, p.read_bytes()) for p in pdfs], real_embedder)
    assert sum(r.status == "added" for r in results) == 36
    rows = [json.loads(line) for line in (SQUAD / "qa_sample.jsonl").read_text().splitlines()]
    rankings = search_many(ws, "squad36", [row["question"] for row in rows], real_embedder, RetrievalSettings(k=5))
    hits = sum(
        any(hit.document == row["source_doc"] and any(normalise(a) in normalise(hit.text) for a in row["answers"]) for hit in ranking)
        for row, ranking in zip(rows, rankings)
    )
    rate = hits / len(rows)
    print(f"squad36 hit@5 = {rate:.3f} over {len(rows)} questions")
    assert rate >= 0.85
