"""`python -m core dataset build|import|list|show`: training rows from a knowledge base or a file."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import print_json
from core.errors import StudioError


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="build, import and list training datasets")
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION")

    build = sub.add_parser("build", help="build training rows from a knowledge base")
    build.add_argument("--kb", required=True, help="knowledge base name")
    build.add_argument("--kind", choices=("qa", "summary", "style"), default="qa")
    build.add_argument("--style", default=None, help="the voice/format for style rows")
    build.add_argument("--use-model", action="store_true", help="qa: ask the model for questions (slow; --engine picks which)")
    from core.cli import add_engine_arguments

    add_engine_arguments(build)
    build.add_argument("--max-rows", type=int, default=200)
    build.add_argument("--format", choices=("instruction", "prompt_completion"), default="instruction")
    build.add_argument("--heldout", type=float, default=0.2, help="held-out fraction")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", required=True, help="dataset id")
    build.add_argument("--replace", action="store_true", help="replace an existing dataset with this id (never one a run used)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=_build)

    imp = sub.add_parser("import", help="import a JSONL or CSV file (instruction/input/output or prompt/completion)")
    imp.add_argument("file")
    imp.add_argument("--out", required=True, help="dataset id")
    imp.add_argument("--replace", action="store_true", help="replace an existing dataset with this id (never one a run used)")
    imp.add_argument("--max-length", type=int, default=512, help="report rows longer than this many tokens")
    imp.add_argument("--heldout", type=float, default=0.2)
    imp.add_argument("--seed", type=int, default=0)
    imp.add_argument("--force", action="store_true", help="save the valid rows even if some lines have errors")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=_import)

    lst = sub.add_parser("list", help="list datasets")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _workspace(args):
    from core.settings import get_workspace

    return get_workspace(args.workspace)


def _build(args) -> int:
    from core.datasets import (
        DEFAULT_STYLE, DatasetBuildSettings, build_from_knowledge_base, check_dataset_id, detect_style_rule, save_dataset, skipped_summary,
    )

    ws = _workspace(args)
    check_dataset_id(ws, args.out, args.replace)  # before the (slow) build, not after it
    settings = DatasetBuildSettings(kind=args.kind, style=args.style or DEFAULT_STYLE, use_model=args.use_model, max_rows=args.max_rows, seed=args.seed)
    generate = None
    if args.use_model and args.kind == "qa":
        from core.cli import engine_from_args
        from core.engines import generate_text
        from core.generation import DecodingSettings

        engine = engine_from_args(args, ws)
        generate = lambda prompt: generate_text(engine, [{"role": "user", "content": prompt}], DecodingSettings(max_new_tokens=80))  # noqa: E731
    skipped: list[dict] = []
    rows = build_from_knowledge_base(ws, args.kb, settings, generate, skipped=skipped)
    rule = detect_style_rule(settings.style) if args.kind == "style" else None
    info = save_dataset(ws, args.out, rows, kind=args.kind, fmt=args.format, heldout_fraction=args.heldout, seed=args.seed,
                        style_rule=rule, origin=f"kb:{args.kb}", extra_meta={"style": settings.style if rule else None},
                        replace=args.replace)
    if args.json:
        print_json({**info.__dict__, "skipped_chunks": len(skipped)})
    else:
        print(f"dataset {info.id}: {info.train_rows} train + {info.heldout_rows} held-out rows ({info.kind}"
              + (f", style rule {rule}" if rule else "") + ")")
        if skipped:
            print(skipped_summary(skipped))
    return 0


def _import(args) -> int:
    from core.datasets import check_dataset_id, parse_upload, save_dataset

    ws = _workspace(args)
    path = Path(args.file)
    if not path.is_file():
        raise StudioError(f"No file at {path}.")
    check_dataset_id(ws, args.out, args.replace)
    report = parse_upload(path.name, path.read_bytes(), max_length=args.max_length)
    if args.json and (report.errors and not args.force or not report.rows):
        print_json({"ok": False, "errors": report.errors, "duplicates": report.duplicates, "too_long": report.too_long})
    elif not args.json:
        for line, message in report.errors[:20]:
            print(f"line {line}: {message}")
        print(report.summary())
    if not report.rows:
        raise StudioError(f"{path.name} has no valid rows.")
    if report.errors and not args.force:
        raise StudioError(f"{path.name} has {len(report.errors)} invalid lines; fix them or pass --force to keep only the valid rows.")
    fmt = "prompt_completion" if report.detected_format == "prompt_completion" else "instruction"
    info = save_dataset(ws, args.out, report.rows, kind="imported", fmt=fmt, heldout_fraction=args.heldout, seed=args.seed,
                        origin=f"file:{path.name}", extra_meta={"too_long_rows": len(report.too_long), "max_length": args.max_length}, replace=args.replace)
    if args.json:
        print_json({"ok": True, **info.__dict__, "duplicates": report.duplicates, "too_long": report.too_long, "errors": report.errors})
    else:
        print(f"dataset {info.id}: {info.train_rows} train + {info.heldout_rows} held-out rows")
    return 0


def _list(args) -> int:
    from core.datasets import list_datasets

    items = list_datasets(_workspace(args))
    if args.json:
        print_json([d.__dict__ for d in items])
        return 0
    if not items:
        print("no datasets yet")
    for d in items:
        print(f"{d.id:30} {d.kind:9} {d.train_rows:5} train {d.heldout_rows:4} held-out  {d.style_rule or ''}")
    return 0
