"""Shared helpers for the Tune tests: a workspace with the embedded model converted once per machine."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import SQUAD  # noqa: E402
MODEL_CACHE = Path(os.environ.get("STUDIO_TEST_MODEL_CACHE", "/tmp/tune-model-cache"))


def converted_model_dir() -> Path:
    """SmolLM2 as safetensors, converted once (~20 s) into a cache shared by the tests."""
    from core.models import convert_embedded_generator
    from core.settings import Workspace

    return convert_embedded_generator(Workspace(MODEL_CACHE).ensure())


def workspace_with_model(root: Path):
    """A fresh workspace whose models/ links to the converted model (no 540 MB copy per test)."""
    from core.settings import get_workspace

    ws = get_workspace(root)
    target = ws.models / "SmolLM2-135M-Instruct"
    if not target.exists():
        target.symlink_to(converted_model_dir(), target_is_directory=True)
    for export in (MODEL_CACHE / "models").glob("*.onnx-v*"):  # the embedder's ONNX export, when made
        if not (ws.models / export.name).exists():
            (ws.models / export.name).symlink_to(export, target_is_directory=True)
    return ws


def record_run(workspace, run_id: str, status: str = "completed", base_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
               dataset_id: str = "d") -> str:
    """A row in the runs table, as the worker leaves it (no training): only a completed run's adapter is offered."""
    from core.storage import transaction
    from core.training import open_runs_db

    with open_runs_db(workspace) as conn, transaction(conn):
        conn.execute("INSERT OR REPLACE INTO runs (id, dataset_id, base_model, config, status, created_at) VALUES (?, ?, ?, '{}', ?, ?)",
                     (run_id, dataset_id, base_model, status, run_id))
    return run_id


def model_config_dir() -> Path:
    """SmolLM2's config.json and tokenizer, no weights: all that model facts and pre-launch plans read.

    Read from the embedded GGUF's metadata once per machine (~20 s, no weight conversion). A test on a workspace
    with this folder fails if model_facts or plan_run ever start loading weights."""
    from core.models import embedded_generator_gguf
    from core.storage import build_folder_once

    def build(staging: Path) -> None:
        from transformers import AutoConfig, AutoTokenizer

        gguf = embedded_generator_gguf()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config.save_pretrained(staging)

    return build_folder_once(MODEL_CACHE / "models" / "SmolLM2-135M-Instruct-config-only", "config.json", build)


def workspace_with_model_config(root: Path):
    """A fresh workspace whose embedded model is its config and tokenizer only (see model_config_dir)."""
    from core.settings import get_workspace

    ws = get_workspace(root)
    target = ws.models / "SmolLM2-135M-Instruct"
    if not target.exists():
        target.symlink_to(model_config_dir(), target_is_directory=True)
    return ws


def squad_passages(count: int, stride: int = 7, root: Path = SQUAD) -> list[dict]:
    """Distinct gold paragraphs of squad36 (one per source_passage), spread over the articles (in-repo samples by default)."""
    seen, passages = set(), []
    with open(root / "qa.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["source_passage"] not in seen:
                seen.add(row["source_passage"])
                passages.append(row)
    return passages[::stride][:count]


def passage_chunks(passages: list[dict]):
    from core.knowledge import Chunk

    return [(i, p["source_doc"], Chunk(p["source_passage"], p["source_pages"][0], p["source_pages"][-1], i)) for i, p in enumerate(passages)]


def style_rows(count: int, max_input_chars: int = 900, root: Path = SQUAD, kind: str = "style") -> list[dict]:
    """`count` training rows from squad36 gold paragraphs (round-robin over the articles). Not every paragraph
    makes a style row (one without a stated risk or 4 whole sentences is skipped), so read as many as needed."""
    from core.datasets import DatasetBuildSettings, build_rows

    rows = build_rows(passage_chunks(squad_passages(100_000, stride=1, root=root)),
                      DatasetBuildSettings(kind=kind, max_input_chars=max_input_chars, max_rows=count))
    assert len(rows) == count, f"only {len(rows)} {kind} rows from {root}"
    return rows


def style_follow_rates(workspace, run_id: str, dataset_id: str, rule: str, limit: int = 10, max_new_tokens: int = 96,
                       repetition_penalty: float = 1.1) -> dict:
    """Share of held-out prompts whose answers follow `rule`, base model vs base + this run's adapter."""
    from core.datasets import follows_style, load_dataset_rows
    from core.engines import GenerationRequest, generate_many, open_engine
    from core.errors import StudioError
    from core.generation import DecodingSettings, build_messages
    from core.models import GeneratorSpec
    from core.adapters import adapter_path
    from core.training import get_run

    rows = load_dataset_rows(workspace, dataset_id, "heldout")[:limit]
    assert rows, f"the dataset {dataset_id!r} has no held-out rows to check"
    run = get_run(workspace, run_id)
    # Through the generation seam like every answer: base rows and adapter rows in one mixed batch, fp32 (repeatable).
    engine = open_engine("transformers", workspace, GeneratorSpec(model_id=run.base_model, dtype="float32"))
    adapter = str(adapter_path(workspace, run_id))
    requests = [GenerationRequest(f"{kind}{i}", build_messages(row["prompt"]), adapter if kind == "tuned" else None)
                for kind in ("base", "tuned") for i, row in enumerate(rows)]
    results = generate_many(engine, requests, DecodingSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty))
    errors = [r.error for r in results.values() if r.error]
    if errors:
        raise StudioError(errors[0])
    base = [results[f"base{i}"].text for i in range(len(rows))]
    tuned = [results[f"tuned{i}"].text for i in range(len(rows))]
    rate = lambda answers: sum(follows_style(a, rule) for a in answers) / len(answers)  # noqa: E731
    return {"base": rate(base), "tuned": rate(tuned), "n": len(rows), "base_answers": base, "tuned_answers": tuned}
