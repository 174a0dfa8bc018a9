"""Embedding speed and retrieval quality: plain SentenceTransformer.encode fp32 against ONNX Runtime.

    python bench/embed_bench.py [--rounds 6] [--results bench/RESULTS_embed.md]

1. Chunks the 36 PDFs of /work/shared/data/squad36/docs exactly as ingestion does (default ChunkingSettings).
2. Splits the chunks into `rounds` slices. Each round encodes its slice with every backend, the
   order alternating from round to round, so that all backends see the same machine load:
   - torch fp32: `SentenceTransformer.encode(slice, batch_size=32, normalize_embeddings=True)`, the plain call;
   - onnx fp32 and onnx int8: core.embedding.OnnxEmbedder (the app's path: length-sorted batches).
   Both sides use the same thread count (picked once by load, like the app: 1 when the machine is busy).
3. Quality: for each backend, a knowledge base is built from its own vectors through the real
   ingest_files (the vectors enter through the Embedder seam), and the 180 gold questions of
   qa_sample.jsonl are searched with that backend's query vectors: hit@5 dense and hybrid.
   Also int8 queries against fp32-built vectors (what mixing would cost).
4. Writes bench/RESULTS_embed.md.

Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

SQUAD = Path(os.environ.get("STUDIO_SQUAD36", "/work/shared/data/squad36"))


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class LookupEmbedder:
    """Precomputed vectors behind the Embedder seam, so every backend's kb goes through the real ingest."""

    dimension = 384

    def __init__(self, model_id: str, by_text: dict[str, np.ndarray]):
        self.model_id = model_id
        self.by_text = by_text

    def embed_documents(self, texts, progress=None):
        if progress:
            progress(len(texts), len(texts))
        return np.vstack([self.by_text[text] for text in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_queries(self, texts):
        return self.embed_documents(texts)


def squad_chunks(docs: list[Path]) -> list[str]:
    from core.documents import extract_document
    from core.knowledge import ChunkingSettings, chunk_document

    texts: list[str] = []
    for path in docs:
        texts += [chunk.text for chunk in chunk_document(extract_document(path.name, path.read_bytes()), ChunkingSettings())]
    return texts


def hit_at_5(workspace, kb: str, questions: list[dict], query_vectors: dict[str, np.ndarray], mode: str) -> float:
    from core.knowledge import RetrievalSettings, get_knowledge_base, search_many

    queries = [row["question"] for row in questions]
    embedder = LookupEmbedder(get_knowledge_base(workspace, kb).embedding_model, query_vectors)
    results = search_many(workspace, kb, queries, embedder, RetrievalSettings(k=5, mode=mode))
    hits = 0
    for row, found in zip(questions, results):
        answers = [normalise(a) for a in row["answers"] if a.strip()]
        hits += any(hit.document == row["source_doc"] and any(a in normalise(hit.text) for a in answers) for hit in found)
    return hits / len(questions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS_embed.md")
    parser.add_argument("--docs", type=int, default=36, help="first N documents only (a smoke run; the table needs 36)")
    args = parser.parse_args()

    from core import embedding, machine
    from core.knowledge import ingest_files
    from core.models import EmbedderSpec, load_embedder
    from core.settings import get_workspace

    workspace = get_workspace(tempfile.mkdtemp(prefix="embed-bench-"))
    load_start = os.getloadavg()
    threads = embedding.threads_for_load()
    started = time.perf_counter()
    folder = embedding.export_onnx(workspace, EmbedderSpec().model_id)
    export_s = time.perf_counter() - started

    import torch

    torch.set_num_threads(threads)
    plain = load_embedder(EmbedderSpec(device="cpu"))
    onnx = {name: embedding.OnnxEmbedder(folder, EmbedderSpec().model_id, name) for name in ("onnx", embedding.INT8)}
    for embedder in onnx.values():
        embedder.threads = threads

    def encode_torch(texts):
        return np.asarray(plain.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True), np.float32)

    backends = {"torch fp32 (plain encode)": encode_torch, "onnx fp32": onnx["onnx"].embed_documents,
                "onnx int8": onnx[embedding.INT8].embed_documents}
    docs = sorted((SQUAD / "docs").glob("*.pdf"))[: args.docs]
    texts = squad_chunks(docs)
    questions = [json.loads(line) for line in (SQUAD / "qa_sample.jsonl").read_text().splitlines() if line.strip()]
    questions = [row for row in questions if row["source_doc"] in {path.name for path in docs}]
    for encode in backends.values():  # warm-up: first-call allocations out of the timings
        encode(texts[:8])

    seconds = {name: 0.0 for name in backends}
    vectors = {name: [] for name in backends}
    loads = []
    slices = np.array_split(np.arange(len(texts)), args.rounds)
    for round_number, rows in enumerate(slices):
        order = list(backends) if round_number % 2 == 0 else list(reversed(backends))
        for name in order:
            batch = [texts[i] for i in rows]
            began = time.perf_counter()
            vectors[name].append(backends[name](batch))
            seconds[name] += time.perf_counter() - began
        loads.append(os.getloadavg()[0])
        print(f"round {round_number + 1}/{args.rounds}: " + ", ".join(f"{name} {seconds[name]:.1f} s" for name in backends) + f" (load {loads[-1]:.1f})", flush=True)

    query_texts = [row["question"] for row in questions]
    full = {name: np.vstack(parts) for name, parts in vectors.items()}
    queries = {name: (encode_torch(query_texts) if name.startswith("torch") else onnx["onnx" if "fp32" in name else embedding.INT8].embed_queries(query_texts))
               for name in backends}
    agreement = {name: float((full[name] * full["torch fp32 (plain encode)"]).sum(1).min()) for name in backends}

    quality = {}
    for position, name in enumerate(backends):
        kb = f"kb{position}"
        by_text = dict(zip(texts, full[name]))
        ingest_files(workspace, kb, [(path.name, path) for path in docs], LookupEmbedder(name, by_text))
        by_query = dict(zip(query_texts, queries[name]))
        quality[name] = {mode: hit_at_5(workspace, kb, questions, by_query, mode) for mode in ("dense", "hybrid")}
    mixed = {mode: hit_at_5(workspace, "kb0", questions, dict(zip(query_texts, queries["onnx int8"])), mode) for mode in ("dense", "hybrid")}

    baseline = len(texts) / seconds["torch fp32 (plain encode)"]
    flags = sorted(machine.cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "avx2"})
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    lines = [
        "# Embedding backends on squad36 (bench/embed_bench.py)",
        "",
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu}, {os.cpu_count()} cores ({', '.join(flags)}) · "
        f"{len(texts)} chunks of {len(docs)} PDFs (default chunking), {len(questions)} questions · {args.rounds} interleaved rounds, {threads} thread(s) on every side · "
        f"load average {load_start[0]:.1f} at the start, {min(loads):.1f}–{max(loads):.1f} after the rounds · "
        f"one-time ONNX export {export_s:.0f} s (includes loading torch and the model).",
        "",
        "| backend | seconds | chunks/s | speed-up | min cosine vs torch | hit@5 dense | hit@5 hybrid |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in backends:
        rate = len(texts) / seconds[name]
        lines.append(f"| {name} | {seconds[name]:.1f} | {rate:.1f} | {rate / baseline:.2f}x | {agreement[name]:.4f} | "
                     f"{quality[name]['dense']:.3f} | {quality[name]['hybrid']:.3f} |")
    lines += [
        f"| int8 queries on torch-fp32 vectors (mixing) | | | | | {mixed['dense']:.3f} | {mixed['hybrid']:.3f} |",
        "",
        f"hit@5: share of the {len(questions)} gold questions (qa_sample.jsonl) with a top-5 chunk from the question's source document "
        "containing a reference answer; each backend's knowledge base is built through ingest_files from its own vectors "
        "and searched with its own query vectors.",
        "",
    ]
    args.results.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
