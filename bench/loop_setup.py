"""Set up the workspace bench/loop_bench.py measures in: the squad36 knowledge base and a demo adapter.

    STUDIO_WORKSPACE=/tmp/loop-ws HF_HUB_OFFLINE=1 python bench/loop_setup.py [--squad DIR]

Ingests the 36 squad36 PDFs into knowledge base "squad36" (skipped when there), builds the style dataset
the demo adapter learns ("3 bullets, then Risks:", from 130 squad36 gold paragraphs, 10% held out, as in
tests/test_training_slow.py) and trains the demo preset. Prints the run id. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", default="/work/shared/data/squad36")
    parser.add_argument("--kb", default="squad36")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    from core import training as T
    from core.datasets import save_dataset
    from core.knowledge import ingest_files, list_knowledge_bases, load_sentence_embedder
    from core.models import convert_embedded_generator
    from core.settings import get_workspace
    from tune_support import style_rows

    ws = get_workspace().ensure()
    convert_embedded_generator(ws)
    if not any(kb.name == args.kb for kb in list_knowledge_bases(ws)):
        started = time.perf_counter()
        docs = sorted((Path(args.squad) / "docs").glob("*.pdf"))
        ingest_files(ws, args.kb, [(p.name, p.read_bytes()) for p in docs], load_sentence_embedder())
        print(f"ingested {len(docs)} PDFs in {time.perf_counter() - started:.0f} s", flush=True)
    if args.skip_train:
        return 0
    # The rows tests/test_training_slow.py trains the demo preset on, from the folder given: tune_support's default root is
    # the in-repo samples (5 articles), which gave 11 training rows instead of 117 (the 18:48 run of 2026-12-02).
    rows = style_rows(130, max_input_chars=400, root=Path(args.squad))
    save_dataset(ws, "squad-style", rows, kind="style", style_rule="bullets3_risk", heldout_fraction=0.1, seed=0)
    lora, training = T.preset("demo")
    started = time.perf_counter()
    run = T.wait_for_run(ws, T.start_run(ws, "squad-style", lora, training).id, timeout=3600, poll=2.0)
    print(f"run {run.id}: {run.status} in {time.perf_counter() - started:.0f} s", flush=True)
    return 0 if run.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
