"""The RAG path with the real embedded models: ingest real PDFs, find the right chunk, answer with sources."""
import json
import subprocess
import sys

import pytest

from core.ask import ask
from core.generation import NO_CONTEXT_ANSWER, DecodingSettings
from core.ingest import ingest_files
from core.retrieval import RetrievalSettings, search
from tests.conftest import ROOT, SQUAD

pytestmark = pytest.mark.slow
DOCS = ["1973_oil_crisis.pdf", "Amazon_rainforest.pdf", "Black_Death.pdf"]


@pytest.fixture(scope="module")
def squad_kb(tmp_path_factory, real_embedder):
    from core.settings import get_workspace

    from tests.tune_support import workspace_with_model

    ws = get_workspace(tmp_path_factory.mktemp("rag-ws"))
    # real_embedder exported MiniLM once into the shared cache: link it, so the CLI below does not export it again (~20 s)
    workspace_with_model(ws.root)
    results = ingest_files(ws, "squad", [(name, (SQUAD / "docs" / name).read_bytes()) for name in DOCS], real_embedder)
    assert [r.status for r in results] == ["added"] * 3
    return ws


def test_search_finds_the_right_chunk(squad_kb, real_embedder):
    hits = search(squad_kb, "squad", "When did the 1973 oil crisis begin?", real_embedder, RetrievalSettings(k=3))
    assert hits[0].document == "1973_oil_crisis.pdf" and hits[0].page == 1
    assert "October 1973" in hits[0].text
    assert hits[0].score > 0.5


def test_ask_answers_with_sources(squad_kb, real_embedder, real_engine):
    answer = ask(squad_kb, "squad", "What killed people during the Black Death?", real_embedder, real_engine,
                 RetrievalSettings(k=3), DecodingSettings(max_new_tokens=40))
    assert answer.sources and answer.sources[0].document == "Black_Death.pdf"
    assert answer.text and answer.text != NO_CONTEXT_ANSWER
    assert answer.stats.new_tokens > 0 and answer.stats.tokens_per_s > 0 and answer.stats.first_token_s is not None
    assert answer.engine == "transformers" and answer.to_dict()["engine"] == "transformers"


def test_ask_refuses_when_nothing_is_relevant(squad_kb, real_embedder, real_engine):
    answer = ask(squad_kb, "squad", "How do I reset my wifi router password?", real_embedder, real_engine)
    assert answer.sources == [] and answer.text == NO_CONTEXT_ANSWER


def run_cli(*args, workspace):
    env = {"STUDIO_WORKSPACE": str(workspace.root), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_cli_search_many_queries_as_json(squad_kb, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"id": i, "question": q}) for i, q in enumerate(
        ["When did the 1973 oil crisis begin?", "What is the Amazon rainforest?"])))
    done = run_cli("search", "--kb", "squad", "--queries", str(queries), "--k", "2", "--json", workspace=squad_kb)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["id"] for row in rows] == [0, 1]
    assert rows[0]["hits"][0]["document"] == "1973_oil_crisis.pdf"
    assert {"document", "page", "score", "text"} <= set(rows[1]["hits"][0])


def test_cli_errors_exit_non_zero(squad_kb, tmp_path):
    missing = run_cli("search", "oil", "--kb", "nope", workspace=squad_kb)
    assert missing.returncode == 2 and "No knowledge base named 'nope'" in missing.stderr
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"")
    good = tmp_path / "good.txt"
    good.write_text("The quarterly board meeting is held in Tromsø every March. " * 4)
    done = run_cli("ingest", str(broken), str(good), "--kb", "mixed", workspace=squad_kb)
    assert done.returncode == 1
    assert "is empty (0 bytes)" in done.stdout and "1 added" in done.stdout
    listing = run_cli("kb", "list", "--json", workspace=squad_kb)
    assert {kb["name"] for kb in json.loads(listing.stdout)} == {"squad", "mixed"}
