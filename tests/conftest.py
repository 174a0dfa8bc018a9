"""Shared fixtures: a fresh workspace per test, a fast fake embedder, and (slow) the real models."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
SQUAD = Path("/work/shared/data/squad36")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the real embedded models")
    config.addinivalue_line("markers", "browser: drives headless Chromium")


class HashEmbedder:
    """Bag of words hashed into 256 dimensions, unit-normalised: deterministic and instant."""

    model_id = "fake:hash-bow"
    dimension = 256

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_documents(self, texts, progress=None):
        return np.vstack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_queries(self, texts):
        return self.embed_documents(texts)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from core.settings import get_workspace

    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "ws"))
    ws = get_workspace(tmp_path / "ws")
    seed_converted_model(ws)
    return ws


def seed_converted_model(ws) -> None:
    """Reuse an already converted embedded generator (conversion takes ~20 s): $STUDIO_TEST_MODELS or /tmp/eval-ws/models."""
    cached = Path(os.environ.get("STUDIO_TEST_MODELS", "/tmp/eval-ws/models")) / "SmolLM2-135M-Instruct"
    if (cached / "config.json").exists() and not (ws.models / cached.name).exists():
        shutil.copytree(cached, ws.models / cached.name)


@pytest.fixture
def fake_embedder():
    return HashEmbedder()


TOY_DOCS = {
    "harbor.txt": (
        "The Harbor Bridge opened in 1932 and carries eight lanes of traffic. "
        "Its chief engineer was Ada Brennan, who designed the steel arch.\n\n"
        "The bridge is painted grey every ten years by a crew of forty painters."
    ),
    "orchard.txt": (
        "The Linden Orchard grows twelve varieties of apples. "
        "Its oldest tree was planted in 1871 by the Moreau family.\n\n"
        "Harvest starts in September and the cider press runs until November."
    ),
}


@pytest.fixture
def toy_kb(workspace, fake_embedder):
    from core.knowledge import ChunkingSettings, ingest_files

    ingest_files(workspace, "toy", [(n, t.encode()) for n, t in TOY_DOCS.items()], fake_embedder, ChunkingSettings(200, 20))
    return "toy"
