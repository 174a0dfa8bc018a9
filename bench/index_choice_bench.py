"""Which FAISS index per size: recall@10 against exact search and per-query time, for each candidate, side by side.

    python bench/index_choice_bench.py [--sizes 100000,300000] [--results bench/RESULTS_scale.md]

Data: scale_bench.py's clustered unit vectors (384 dimensions, clusters of ~500). Two query sets of 200:
- near-tied (worst case): points drawn around fresh cluster centres, away from the data, so their top 100
  neighbours are almost tied (the hard case for any approximate index);
- realistic: a stored vector plus Gaussian noise, cosine ~0.7 to its source, as a question sits near its
  answer chunk (its own top-1/top-10 cosines are printed so the two sets can be compared).
FAISS alone, one OpenMP thread, top 50 (retrieval's fusion depth). Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale_bench import DIMENSION, clustered_vectors  # noqa: E402

from core import vector_index  # noqa: E402


def realistic_queries(data: np.ndarray, count: int = 200, cosine: float = 0.7, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sources = data[rng.choice(len(data), count, replace=False)]
    sigma = np.sqrt((1 / cosine**2 - 1) / DIMENSION)  # |noise|^2 ~ sigma^2 * d, so cos ~ 1/sqrt(1 + sigma^2 d)
    q = sources + sigma * rng.standard_normal(sources.shape).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def timed(index, queries, depth=50):
    import faiss

    faiss.omp_set_num_threads(1)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], depth)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.95)] * 1e3


def candidates(n: int):
    import faiss

    d = DIMENSION
    yield "flat fp32", lambda: faiss.IndexFlatIP(d), [None]
    yield "flat fp16 SQ", lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT), [None]

    def hnsw():
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        return index

    yield "HNSW M32 efC64", hnsw, [("ef", 96), ("ef", 512)]
    nlist = int(4 * np.sqrt(n))

    def ivf():
        return faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)

    yield f"IVF{nlist} fp16", ivf, [("nprobe", 16), ("nprobe", 64), ("nprobe", max(32, nlist // 16))]


def run(n: int) -> list[str]:
    import faiss

    data = np.concatenate(list(clustered_vectors(n)))
    tied = next(clustered_vectors(200, seed=7))
    real = realistic_queries(data)
    exact = faiss.IndexFlatIP(DIMENSION)
    exact.add(data)
    for name, q in (("near-tied", tied), ("realistic", real)):
        sims, _ = exact.search(q, 100)
        print(f"{n}: {name} queries, mean cosine of the 1st / 10th / 100th neighbour: "
              f"{sims[:, 0].mean():.3f} / {sims[:, 9].mean():.3f} / {sims[:, 99].mean():.3f}", flush=True)
    rows = []
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    for name, make, knobs in candidates(n):
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        started = time.perf_counter()
        index = make()
        if not index.is_trained:
            index.train(data[np.random.default_rng(3).choice(n, min(n, 50_000), replace=False)])
        index.add(data)
        build = time.perf_counter() - started
        for knob in knobs:
            label = name
            if knob and knob[0] == "ef":
                index.hnsw.efSearch = knob[1]
                label += f" efSearch {knob[1]}"
            elif knob:
                index.nprobe = knob[1]
                label += f" nprobe {knob[1]}"
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            r_tied = vector_index.recall_at_k(index, exact, tied)
            r_real = vector_index.recall_at_k(index, exact, real)
            p50, p95 = timed(index, real)
            row = f"| {n:,} | {label} | {build:.1f} s | {r_real:.3f} | {r_tied:.3f} | {p50:.1f} / {p95:.1f} ms |"
            print(row, flush=True)
            rows.append(row)
        del index
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000")
    parser.add_argument("--results", default="")
    args = parser.parse_args()
    lines = [f"## Index choice, {dt.datetime.now():%Y-%m-%d %H:%M} (bench/index_choice_bench.py)",
             f"1-min load at start {os.getloadavg()[0]:.1f}.", "",
             "| vectors | index | build (2 threads) | recall@10 realistic | recall@10 near-tied | FAISS p50 / p95 (1 thread, top 50) |",
             "|---:|---|---:|---:|---:|---:|"]
    for n in (int(s) for s in args.sizes.split(",")):
        lines += run(n)
    lines += ["", f"1-min load at the end {os.getloadavg()[0]:.1f}.", ""]
    print("\n".join(lines))
    if args.results:
        path = Path(args.results)
        path.write_text(path.read_text().rstrip() + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
