"""`python -m core compare "question" --kb NAME [--adapter RUN_OR_PATH] [--variants base,rag,ft,hybrid] [--json]`."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="answer one question with base, RAG, fine-tuned and hybrid side by side")
    parser.add_argument("question")
    parser.add_argument("--kb", help="knowledge base for RAG and hybrid")
    parser.add_argument("--adapter", help="adapter run id (workspace/runs/<id>/adapter) or folder, for fine-tuned and hybrid")
    parser.add_argument("--variants", default="base,rag,finetuned,hybrid", help="comma list of base, rag, ft/finetuned, hybrid")
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--system", help="system voice shared by every variant")
    parser.add_argument("--k", type=int, default=5, help="chunks retrieved")
    from core.cli import add_column_engine_argument, add_engine_arguments

    add_engine_arguments(parser)
    add_column_engine_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=handle)


def handle(args) -> int:
    from core.adapters import resolve_adapter
    from core.compare import run_comparison
    from core.variants import USES_ADAPTER, USES_CONTEXT, parse_variants
    from core.cli import column_engine_specs, engine_from_args, open_column_engines
    from core.errors import StudioError
    from core.generation import DecodingSettings
    from core.retrieval import RetrievalSettings, retrieve
    from core.settings import get_workspace

    workspace = get_workspace(args.workspace)
    column_engine_specs(args.column_engine)  # a mistyped --column-engine fails before anything loads
    variants = parse_variants(args.variants)
    settings = DecodingSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    settings.validate()
    retrieval = RetrievalSettings(k=args.k)
    retrieval.validate()
    adapter = str(resolve_adapter(workspace, args.adapter)) if args.adapter else None
    hits = []
    if any(v in USES_CONTEXT for v in variants):
        if not args.kb:
            raise StudioError("RAG and hybrid need --kb NAME; or choose --variants base,ft.")
        from core.evaluation import embedder_for_kb

        embedder = embedder_for_kb(workspace, args.kb)  # the kb's own model and precision
        hits = retrieve(workspace, args.kb, args.question, embedder, retrieval)
    engine = engine_from_args(args, workspace)
    engines = open_column_engines(args, workspace)
    comparison = run_comparison(engine, args.question, variants, hits=hits, adapter=adapter, settings=settings, system=args.system,
                                engines=engines)
    comparison.kb = args.kb
    if args.json:
        from core.cli import print_json

        print_json(comparison.to_dict())
        return 0
    # Answers and chunks carry document text (and model output) that may hold terminal escape sequences.
    from core.commands.knowledge import terminal_safe as safe

    print(f"Q: {safe(comparison.question)}   (all variants in {comparison.wall_s:.1f} s)")
    for answer in comparison.answers.values():
        print(f"\n=== {answer.title} ({safe(answer.engine_label)}) ===")
        if answer.error:
            print(f"error: {safe(answer.error)}")
            continue
        print(safe(answer.text))
        s = answer.stats
        first = f"{s.first_token_s:.2f}s" if s.first_token_s is not None else "-"
        print(f"[first token {first}, total {s.total_s:.2f}s, {s.new_tokens} tokens, {s.tokens_per_s:.1f} tok/s]")
        for number, hit in enumerate(answer.hits, start=1):
            print(f"  [{number}] {safe(hit.document)} p.{hit.page} score {hit.score:.2f}: {' '.join(safe(hit.text).split())[:100]}")
    return 0 if not any(a.error for a in comparison.answers.values() if a.variant not in USES_ADAPTER or adapter) else 1

