import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on 2 cores: each takes its share of the cores
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _name in ("STUDIO_TRAIN_THREADS", "STUDIO_TORCH_THREADS", "OMP_NUM_THREADS"):  # OpenMP threads spin when
        os.environ.setdefault(_name, _share)  # oversubscribed: 2+2 threads on 2 cores ran LoRA 4x slower (bench/RESULTS_train.md)
# The in-repo sample set (5 squad36 PDFs with their gold questions, same layout as squad36) serves every test by
# default, so a fresh clone passes; the full 36-document squad36 only serves tests that need all of it.
SAMPLES = ROOT / "samples"
SQUAD = SAMPLES
SQUAD_FULL = next(
    (path for path in (Path(os.environ.get("STUDIO_SQUAD36", "")), ROOT.parent / "shared" / "data" / "squad36",
                       Path("/work/shared/data/squad36")) if str(path) != "." and (path / "qa.jsonl").exists()),
    None,
)
needs_full_squad36 = pytest.mark.skipif(
    SQUAD_FULL is None,
    reason="needs all 36 squad36 PDFs, absent here: set STUDIO_SQUAD36 to the squad36 folder (the in-repo samples/ hold 5)",
)


class FakeEmbedder:
    """Hashed bag of words: deterministic and instant. Enters through the same Embedder seam as MiniLM."""

    model_id = "fake:hashed-bow"
    dimension = 256

    def _embed(self, texts):
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts, progress=None):
        vectors = self._embed(list(texts))
        if progress:
            progress(len(texts), len(texts))
        return vectors

    def embed_queries(self, texts):
        return self._embed(list(texts))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from core.settings import get_workspace

    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "ws"))
    return get_workspace(tmp_path / "ws")


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()


@pytest.fixture(scope="session")
def shared_models_workspace(tmp_path_factory):
    """One workspace per test session holding the converted embedded generator (converted once, ~20 s)."""
    from core.settings import get_workspace

    root = Path(os.environ.get("STUDIO_TEST_MODEL_CACHE", "/tmp/tune-model-cache"))  # shared with tests/tune_support.py
    return get_workspace(root)


@pytest.fixture(scope="session")
def real_embedder(shared_models_workspace):
    """The default embedder (int8 ONNX where the CPU has VNNI or AVX2), exported once into the shared model cache."""
    from core.knowledge import load_sentence_embedder

    return load_sentence_embedder(workspace=shared_models_workspace)


@pytest.fixture(scope="session")
def real_generator(shared_models_workspace):
    from core.models import GeneratorSpec, load_generator

    return load_generator(GeneratorSpec(), shared_models_workspace)


@pytest.fixture(scope="session")
def real_engine(shared_models_workspace):
    """The embedded model behind the generation seam (transformers, its own copy of the weights)."""
    from core.engines import open_engine

    return open_engine("transformers", shared_models_workspace)


@pytest.fixture
def app_workspace(tmp_path, monkeypatch, shared_models_workspace):
    """A fresh workspace for page tests, sharing the once-converted embedded generator by symlink."""
    from core.models import convert_embedded_generator
    from core.settings import get_workspace

    converted = convert_embedded_generator(shared_models_workspace)
    ws = get_workspace(tmp_path / "app-ws")
    (ws.models / converted.name).symlink_to(converted, target_is_directory=True)
    for export in shared_models_workspace.models.glob("*.onnx-v*"):  # the embedder's ONNX export, when made
        (ws.models / export.name).symlink_to(export, target_is_directory=True)
    monkeypatch.setenv("STUDIO_WORKSPACE", str(ws.root))
    return ws


HashEmbedder = FakeEmbedder  # the evaluation tests' name for the same fake

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


def seed_converted_model(ws) -> None:
    """Link the once-converted embedded generator into a workspace (no 540 MB copy, no 20 s conversion)."""
    from tests.tune_support import workspace_with_model

    workspace_with_model(ws.root)


@pytest.fixture
def fake_engine(monkeypatch):
    """An EchoEngine registered as the "fake" engine and chosen by `auto` (tests/fake_engines.py)."""
    from tests.fake_engines import install

    return install(monkeypatch)


@pytest.fixture(scope="session")
def tiny_family_models(tmp_path_factory):
    """family key -> folder of a tiny random-init model with a family-like tokenizer (tests/tiny_families.py).

    Built once per machine next to the converted SmolLM2 (keyed by the builder's source), so later sessions take no time.
    """
    from tests.tiny_families import cached_build
    from tests.tune_support import MODEL_CACHE, converted_model_dir

    return cached_build(converted_model_dir(), MODEL_CACHE)


def applied_plan(**fields):
    """What Decide's "Apply to the other pages" saves (ui.state.AppliedPlan), with some plan fields set:
    a page test's shortcut through the Decide page, typed like the real thing."""
    import dataclasses

    from core.decision import decide, default_answers, plan_pipelines
    from ui.state import AppliedPlan

    return AppliedPlan(dataclasses.replace(plan_pipelines(decide(default_answers())), **fields), markdown="")


# Longest first: under `pytest -n 2` (make test) it starts at once on one worker while the other works through the
# rest, instead of starting last and finishing alone (it is ~40% of the suite's time on one core).
LONGEST_FIRST = ("test_demo_preset_teaches_the_format",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.originalname not in LONGEST_FIRST)  # stable: every other test keeps its order
