"""Embedding backends (core/embedding.py): choosing one per CPU, recording it in the knowledge base,
and the real ONNX export agreeing with sentence-transformers."""
import numpy as np
import pytest

from core import embedding
from core.errors import StudioError
from core.models import EMBEDDED_EMBEDDER

ZEN4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})  # e.g. the AVX2-only EPYC of bench/RESULTS_embed.md
NO_INT8_KERNELS = frozenset({"sse4_2", "avx"})
ARM = frozenset({"fp", "asimd", "asimddp"})  # int8 untested there


def test_int8_is_chosen_from_the_cpu_flags():
    for flags in (ZEN4, SAPPHIRE_RAPIDS, frozenset({"avx_vnni"}), AVX2_ONLY):
        assert embedding.int8_pays(flags), flags
    for flags in (NO_INT8_KERNELS, ARM, frozenset()):
        assert not embedding.int8_pays(flags), flags


def test_auto_picks_int8_where_the_cpu_has_int8_kernels(monkeypatch):
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: True)
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "auto", ZEN4) == "onnx-int8"
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "auto", AVX2_ONLY) == "onnx-int8"
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "auto", ARM) == "onnx"
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "fp32", ZEN4) == "onnx"
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "torch", ZEN4) == "torch"
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: False)
    assert embedding.resolve_backend(EMBEDDED_EMBEDDER, "auto", ZEN4) == "torch"
    with pytest.raises(StudioError, match="needs onnxruntime"):
        embedding.resolve_backend(EMBEDDED_EMBEDDER, "onnx-int8", ZEN4)
    with pytest.raises(StudioError, match="Unknown embedding backend"):
        embedding.resolve_backend(EMBEDDED_EMBEDDER, "int4", ZEN4)


def test_a_hub_id_stays_on_torch(monkeypatch):
    monkeypatch.setattr(embedding, "onnxruntime_available", lambda: True)
    assert embedding.resolve_backend("BAAI/bge-small-en-v1.5", "auto", ZEN4) == "torch"


def test_the_recorded_model_names_int8_and_only_int8():
    assert embedding.recorded_model(EMBEDDED_EMBEDDER, "onnx-int8") == EMBEDDED_EMBEDDER + "@onnx-int8"
    for fp32 in ("onnx", "torch"):  # the same vectors (cosine >= 0.9999, checked at export): the same record
        assert embedding.recorded_model(EMBEDDED_EMBEDDER, fp32) == EMBEDDED_EMBEDDER
    assert embedding.split_recorded_model(EMBEDDED_EMBEDDER + "@onnx-int8") == (EMBEDDED_EMBEDDER, "onnx-int8")
    assert embedding.split_recorded_model("/models/my@folder") == ("/models/my@folder", "fp32")
    spec = embedding.spec_for_recorded(EMBEDDED_EMBEDDER + "@onnx-int8", device="cpu")
    assert (spec.model_id, spec.backend, spec.device) == (EMBEDDED_EMBEDDER, "onnx-int8", "cpu")


def test_a_kb_built_with_int8_refuses_fp32_vectors(workspace, fake_embedder):
    from core.knowledge import ingest_files

    class Int8(type(fake_embedder)):
        model_id = "fake:hashed-bow@onnx-int8"

    ingest_files(workspace, "kb", [("a.txt", b"The bridge opened in 1932. " * 4)], Int8())
    with pytest.raises(StudioError, match="built with fake:hashed-bow@onnx-int8"):
        ingest_files(workspace, "kb", [("b.txt", b"The orchard grows apples. " * 4)], fake_embedder)


@pytest.mark.slow
def test_onnx_vectors_agree_with_sentence_transformers(real_embedder, shared_models_workspace):
    from core.models import EmbedderSpec, load_embedder

    texts = ["The Harbor Bridge opened in 1932.", "Who designed the arch?", "Oil prices rose fourfold in 1973. " * 20]
    reference = load_embedder(EmbedderSpec(device="cpu")).encode(texts, normalize_embeddings=True)
    fp32 = embedding.load_sentence_embedder(embedding.spec_for_recorded(EMBEDDED_EMBEDDER), shared_models_workspace)
    assert fp32.model_id == EMBEDDED_EMBEDDER
    assert float((fp32.embed_documents(texts) * reference).sum(1).min()) > 0.9999
    if embedding.int8_pays():
        assert real_embedder.backend == "onnx-int8" and real_embedder.model_id.endswith("@onnx-int8")
    vectors = real_embedder.embed_documents(texts)
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert float((vectors * reference).sum(1).min()) > 0.97
    # Length-sorted batches put rows back in the caller's order.
    assert np.allclose(real_embedder.embed_documents(texts[::-1])[::-1], vectors, atol=1e-5)
