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


def squad_passages(count: int, stride: int = 7) -> list[dict]:
    """Distinct gold paragraphs of squad36 (one per source_passage), spread over the articles."""
    seen, passages = set(), []
    with open(SQUAD / "qa.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["source_passage"] not in seen:
                seen.add(row["source_passage"])
                passages.append(row)
    return passages[::stride][:count]


def passage_chunks(passages: list[dict]):
    from core.knowledge import Chunk

    return [(i, p["source_doc"], Chunk(p["source_passage"], p["source_pages"][0], p["source_pages"][-1], i)) for i, p in enumerate(passages)]
