"""Benchmark: are style training rows worth showing? Before (a git revision of core/datasets.py) vs now.

    python bench/datasets_bench.py [--before REV] [--record bench/RESULTS_datasets.md]

Corpus: the 10-Q-like PDF of tests/tenq_pdf.py (cover page, table of contents, financial tables, legal notices,
signature block) and the five sample PDFs in samples/, chunked with the default ChunkingSettings (no embedder needed).
Boilerplate is labelled by page, independently of the rules in core/datasets.py: in the 10-Q, pages 1 (cover),
2 (table of contents, forward-looking notice), 3-4 (financial statements: tables of figures), 7 (market-risk and
controls formalities) and 10 (exhibits, signatures). Per build it reports: rows, the share of boilerplate rows,
outputs with a clipped "..."/"…" (one the source text does not have), outputs ending with the old constant Risks line, bullets not ending a sentence,
and Risks lines taken from the row's own input.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BOILERPLATE_PAGES = {1: "cover page", 2: "table of contents / notice", 3: "financial table", 4: "financial table",
                     7: "controls formalities", 10: "exhibits / signatures"}
CONSTANT_RISK = "Risks: none stated in the source; verify before relying on it."


def load_revision(rev: str):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:core/datasets.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "datasets_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("datasets_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["datasets_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def corpus():
    from core.documents import extract_document
    from core.knowledge import ChunkingSettings, chunk_document
    from tenq_pdf import make_10q_pdf

    tenq = make_10q_pdf(Path(tempfile.mkdtemp()) / "northwind-10q.pdf")
    files = {"10-Q": [tenq], "samples": sorted((ROOT / "samples" / "docs").glob("*.pdf"))}
    out = {}
    for name, paths in files.items():
        chunks = []
        for path in paths:
            for chunk in chunk_document(extract_document(path.name, path.read_bytes()), ChunkingSettings()):
                chunks.append((len(chunks), path.name, chunk))
        out[name] = chunks
    return out


def measure(module, chunks, boilerplate_pages: dict | None) -> dict:
    rows = module.build_rows(chunks, module.DatasetBuildSettings(kind="style", max_rows=200))
    outputs = [r["output"] for r in rows]
    bullets = [line for o in outputs for line in o.splitlines() if line.startswith("- ")]
    risks = [(r, next((line for line in r["output"].splitlines() if line.startswith("Risks:")), "")) for r in rows]
    grounded = sum(bool(line) and line[len("Risks: "):].rstrip(".") in r["input"] for r, line in risks)
    first = rows[:5]
    return {
        "rows": len(rows),
        "boilerplate": sum(r["source"]["page"] in boilerplate_pages for r in rows) if boilerplate_pages is not None else None,
        "boilerplate_first5": sum(r["source"]["page"] in boilerplate_pages for r in first) if boilerplate_pages is not None else None,
        # a clipped line: "..."/"…" that the source itself does not have (quotes in squad articles do)
        "clipped": sum(any(("..." in line or "…" in line) and line.split(": ", 1)[-1].lstrip("- ") not in r["input"]
                           for line in r["output"].splitlines()) for r in rows),
        "constant_risk": sum(o.rstrip().endswith(CONSTANT_RISK) for o in outputs),
        "bullets": len(bullets),
        "bullet_not_sentence": sum(line.rstrip()[-1:] not in ".!?\"')”" or line.rstrip().endswith(("...", "…")) for line in bullets),
        "risk_grounded": grounded,
    }


def pct(part, whole) -> str:
    return "n/a" if part is None or not whole else f"{part}/{whole} ({part / whole:.0%})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="6b0b861", help="git revision whose core/datasets.py is the 'before'")
    parser.add_argument("--record", help="append the results to this Markdown file")
    args = parser.parse_args()

    from core import datasets as now

    before = load_revision(args.before)
    started = time.perf_counter()
    sets = corpus()
    lines = [f"## Style training rows: boilerplate, clipping, Risks line (bench/datasets_bench.py), "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "",
             f"Before = core/datasets.py at {args.before}; after = this branch. Style rows (3 bullets + Risks), max 200 rows, "
             f"default chunking (800/100). Boilerplate labelled by page (10-Q pages {sorted(BOILERPLATE_PAGES)}), not by the new rules. "
             f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
             "",
             "| corpus | build | chunks | rows | boilerplate rows | boilerplate in first 5 | outputs with … | constant Risks line | bullets not a whole sentence | Risks line from the row's input |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, chunks in sets.items():
        pages = BOILERPLATE_PAGES if name == "10-Q" else None
        for label, module in (("before", before), ("after", now)):
            m = measure(module, chunks, pages)
            lines.append(f"| {name} | {label} | {len(chunks)} | {m['rows']} | {pct(m['boilerplate'], m['rows'])} | "
                         f"{pct(m['boilerplate_first5'], min(5, m['rows']))} | {pct(m['clipped'], m['rows'])} | "
                         f"{pct(m['constant_risk'], m['rows'])} | {pct(m['bullet_not_sentence'], m['bullets'])} | "
                         f"{pct(m['risk_grounded'], m['rows'])} |")
    skipped: list[dict] = []
    now.build_rows(sets["10-Q"], now.DatasetBuildSettings(kind="style", max_rows=200), skipped=skipped)
    lines += ["", f"After, on the 10-Q: {now.skipped_summary(skipped)}. Ran in {time.perf_counter() - started:.1f} s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.record:
        with open(args.record, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
