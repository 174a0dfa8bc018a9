"""`python -m core decide` and `python -m core estimate` through core.cli.main."""
from __future__ import annotations

import json

from core.cli import main


def write(tmp_path, payload) -> str:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(payload))
    return str(path)


def test_decide_text(tmp_path, capsys):
    assert main(["decide", "--answers", write(tmp_path, {"knowledge_change": "daily", "traceability": "required"})]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recommended: RAG (confidence")
    assert "scores: RAG" in out and "reasons:" in out and "  1. " in out and "sensitivity: " in out


def test_decide_json_fills_defaults(tmp_path, capsys):
    assert main(["decide", "--answers", write(tmp_path, {}), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "rag" and set(data["scores"]) == {"rag", "finetune", "hybrid"}
    assert len(data["answers"]) == 13 and data["answers"]["latency"] == "interactive"
    assert data["plan"]["compare_variants"][0] == "base" and len(data["reasons"]) == 3


def test_decide_unknown_id_exits_2_and_lists_ids(tmp_path, capsys):
    assert main(["decide", "--answers", write(tmp_path, {"colour": "blue"})]) == 2
    err = capsys.readouterr().err
    assert "unknown question id 'colour'" in err and "knowledge_change" in err


def test_decide_out_of_range_answer_exits_2_and_lists_answers(tmp_path, capsys):
    assert main(["decide", "--answers", write(tmp_path, {"latency": "instant"})]) == 2
    err = capsys.readouterr().err
    assert "'instant'" in err and "latency" in err and "relaxed, interactive, realtime" in err


def test_decide_missing_or_bad_file_exits_2(tmp_path, capsys):
    assert main(["decide", "--answers", str(tmp_path / "nope.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["decide", "--answers", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err


def test_estimate_text_and_json(capsys):
    assert main(["estimate", "--params", "3.8e9", "--train-tokens", "2e6", "--hardware", "t4", "--docs", "20"]) == 0
    out = capsys.readouterr().out
    assert "Phi-3-mini" in out and "LoRA:" in out and "QLoRA:" in out and "RAG index: 200 pages" in out
    assert main(["estimate", "--params", "135e6", "--train-tokens", "1e5", "--hardware", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["training"]["lora_seconds"], 2) == 606.06
    # QLoRA runs on CPU (bitsandbytes' CPU backend), at the measured slowdown: 606.06 s * 28.7 / 20.7 = 840.29 s
    assert data["lora"]["fits"] is True and data["qlora"]["fits"] is True and data["qlora"]["supported"] is True
    assert round(data["training"]["qlora_seconds"], 2) == 840.29


def test_estimate_unknown_hardware_exits_2_and_lists_choices(capsys):
    assert main(["estimate", "--params", "3.8e9", "--train-tokens", "2e6", "--hardware", "v100"]) == 2
    err = capsys.readouterr().err
    assert "unknown hardware 'v100'" in err and "a100-80gb" in err and "cpu" in err
