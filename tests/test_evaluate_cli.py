"""`python -m core evaluate` with the fakes entering through the seams: the engine registry and the embedder's model id."""
from __future__ import annotations

import json

from core import evaluation
from tests.fake_engines import install as install_fake_engine
from tests.fake_engines import install_embedder
from core.cli import main
from tests.test_evaluation import FakeRunner


def test_cli_evaluate_prints_metrics_and_id(workspace, toy_kb, fake_embedder, monkeypatch, tmp_path, capsys):
    install_embedder(monkeypatch, fake_embedder)
    install_fake_engine(monkeypatch)  # the runner is real; its engine is a fake registered like any engine
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [
        {"question": "When did the Harbor Bridge open?", "answers": ["1932"], "source_doc": "harbor.txt"},
        {"question": "Who was the chief engineer?", "answer": "Ada Brennan", "source_doc": "harbor.txt"},
    ]))
    root = str(workspace.root)
    assert main(["--workspace", root, "evaluate", "--kb", toy_kb, "--questions", str(questions), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["variants"]) == {"base", "rag"} and payload["questions"] == 2
    assert evaluation.get_evaluation(workspace, payload["id"]).status == "done"
    assert main(["--workspace", root, "evaluate", "--kb", toy_kb, "--questions", str(questions), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "evaluation " in out and "rag" in out and "hit@5" in out


def test_cli_evaluate_errors_exit_2(workspace, tmp_path, capsys):
    root = str(workspace.root)
    assert main(["--workspace", root, "evaluate", "--questions", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["--workspace", root, "evaluate", "--questions", "x.jsonl", "--variants", "hybrid"]) == 2
    assert main(["--workspace", root, "evaluate", "--questions", "x.jsonl", "--adapter", "no-such-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3
