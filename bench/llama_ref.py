"""llama.cpp reference for bench/compare_bench.py: stdlib + llama_cpp only, so it can run in a separate venv.

    LLAMA_PYTHON=/tmp/llama-venv/bin/python python bench/compare_bench.py

llama-cpp-python is never a requirement of the app or the tests. 0.3.36 built natively segfaulted here;
0.3.16 built with CMAKE_ARGS="-DGGML_NATIVE=OFF" in its own venv works.
"""
from __future__ import annotations

import json
import sys
import time


def bench_llama_cpp(texts: dict, gguf: str, lora_gguf: str | None, new_tokens: int, threads: int) -> dict:
    from llama_cpp import Llama

    common = dict(n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512, seed=0, verbose=False)
    base = Llama(model_path=gguf, **common)
    tuned = Llama(model_path=gguf, lora_path=lora_gguf, **common) if lora_gguf else base
    eos = base.token_eos()
    for llm in {id(base): base, id(tuned): tuned}.values():
        llm.create_completion("Hello", max_tokens=4, temperature=0)  # warm-up
    per = {}
    started = time.perf_counter()
    for key, text in texts.items():
        llm = tuned if key in ("finetuned", "hybrid") else base
        llm.reset()
        t0 = time.perf_counter()
        first, count = None, 0
        # repeat_penalty 1.0: the app's default (core.generation.DecodingSettings); greedy; EOS banned so every column does new_tokens.
        for _ in llm.create_completion(text, max_tokens=new_tokens, temperature=0.0, repeat_penalty=1.0, logit_bias={eos: -1e9}, stream=True):
            if first is None:
                first = time.perf_counter() - t0
            count += 1
        per[key] = dict(prompt_tokens=len(llm.tokenize(text.encode(), add_bos=False, special=True)), new_tokens=count, first_token_s=first,
                        total_s=time.perf_counter() - t0)
    wall = time.perf_counter() - started
    tokens = sum(s["new_tokens"] for s in per.values())
    return {
        "wall_s": round(wall, 2),
        "first_token_s": round(min(s["first_token_s"] or 0 for s in per.values()), 2),
        "new_tokens": tokens,
        "aggregate_tok_s": round(tokens / wall, 1),
        "per_column_tok_s": [round(s["new_tokens"] / s["total_s"], 1) for s in per.values()],
        "first_token_s_by_column": {k: round(s["first_token_s"] or 0, 2) for k, s in per.items()},
        "prompt_tokens": {k: s["prompt_tokens"] for k, s in per.items()},
        "lora": bool(lora_gguf),
        "threads": threads,
        "version": __import__("llama_cpp").__version__,
    }


if __name__ == "__main__":
    args = json.loads(sys.stdin.read())
    print("RESULT" + json.dumps(bench_llama_cpp(**args)))
