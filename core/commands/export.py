"""`python -m core export RUN_ID --merged DIR [--gguf FILE]` (merged model, Modelfile, GGUF) and
`python -m core export RUN_ID --serve ollama|vllm|llamacpp [--out DIR] [--name NAME]` (files + exact commands to serve it)."""
from __future__ import annotations

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="merge a run's adapter into a full model (and GGUF), or prepare it for a server")
    parser.add_argument("run_id")
    parser.add_argument("--merged", default=None, help="new folder for the merged safetensors model + Modelfile")
    parser.add_argument("--gguf", default=None, help="also write an F32 GGUF file (embedded base only)")
    parser.add_argument("--serve", choices=("ollama", "vllm", "llamacpp"), default=None,
                        help="write what this server needs to serve the fine-tune and print the exact commands")
    parser.add_argument("--out", default=None, help="--serve: folder for the files (default: workspace/exports/<name>-<server>)")
    parser.add_argument("--name", default=None, help="--serve: the model name to serve it under (default: studio-<run id>)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_export)


def _export(args) -> int:
    from core.errors import StudioError
    from core.settings import get_workspace

    ws = get_workspace(args.workspace)
    if args.serve:
        return _serve(ws, args)
    if not args.merged:
        raise StudioError("Give --merged DIR (a merged model) or --serve ollama|vllm|llamacpp (files and commands for a server).")
    from core.training import export_gguf, export_merged

    merged = export_merged(ws, args.run_id, args.merged)
    gguf = export_gguf(ws, args.run_id, merged, args.gguf) if args.gguf else None
    if args.json:
        print_json({"merged": str(merged), "modelfile": str(merged / "Modelfile"), "gguf": str(gguf) if gguf else None})
    else:
        print(f"merged model: {merged}\nOllama Modelfile: {merged / 'Modelfile'}")
        if gguf:
            print(f"GGUF: {gguf}")
    return 0


def _serve(ws, args) -> int:
    from core.engines.serve import export_for_serving

    plan = export_for_serving(ws, args.run_id, args.serve, args.out, args.name)
    if args.json:
        print_json(plan.to_dict())
        return 0
    print(f"{plan.target}: files in {plan.folder}")
    for path in plan.files:
        print(f"  {path}")
    print("\nRun:")
    for command in plan.commands:
        print(f"  {command}")
    for note in plan.notes:
        print(f"\nnote: {note}")
    return 0
