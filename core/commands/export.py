"""`python -m core export RUN_ID [--merged DIR [--gguf FILE]] [--lora-gguf FILE] [--base-gguf FILE]`: merged model,
GGUF files through llama.cpp's own converters (one process for all of them) and Ollama Modelfiles; and
`python -m core export RUN_ID --serve ollama|vllm|llamacpp [--out DIR] [--name NAME]` (files + exact commands to serve it)."""
from __future__ import annotations

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="merge a run's adapter into a full model, GGUF through llama.cpp's converter, "
                                   "or prepare it for a server")
    parser.add_argument("run_id")
    parser.add_argument("--merged", default=None, help="new folder for the merged safetensors model + Modelfile")
    parser.add_argument("--gguf", default=None, help="also write the merged model as one GGUF file (needs --merged)")
    parser.add_argument("--lora-gguf", default=None, help="write the adapter alone as a GGUF adapter (llama.cpp --lora, Ollama ADAPTER)")
    parser.add_argument("--base-gguf", default=None, help="write the plain base model as GGUF (what the GGUF adapter applies to)")
    parser.add_argument("--gguf-type", default="f32", choices=("f32", "f16", "bf16", "q8_0", "auto"), help="GGUF tensor type")
    parser.add_argument("--serve", choices=("ollama", "vllm", "llamacpp"), default=None,
                        help="write what this server needs to serve the fine-tune and print the exact commands")
    parser.add_argument("--out", default=None, help="--serve: folder for the files (default: workspace/exports/<name>-<server>)")
    parser.add_argument("--name", default=None, help="--serve: the model name to serve it under (default: studio-<run id>)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_export)


def _export(args) -> int:
    import sys

    from core.errors import StudioError
    from core.export import export_ggufs, export_merged
    from core.settings import get_workspace

    ws = get_workspace(args.workspace)
    if args.serve:
        return _serve(ws, args)
    if not (args.merged or args.lora_gguf or args.base_gguf):
        raise StudioError("Say what to export: --merged DIR (and --gguf FILE), --lora-gguf FILE and/or --base-gguf FILE, "
                          "or --serve ollama|vllm|llamacpp (files and commands for a server).")
    if args.gguf and not args.merged:
        raise StudioError("--gguf converts the merged model: add --merged DIR.")
    merged = export_merged(ws, args.run_id, args.merged) if args.merged else None
    files = export_ggufs(ws, args.run_id, merged_dir=merged, gguf_file=args.gguf, lora_file=args.lora_gguf, base_file=args.base_gguf,
                         outtype=args.gguf_type)
    result = {"merged": str(merged) if merged else None, "modelfile": str(merged / "Modelfile") if merged else None}
    result.update({name: str(value) for name, value in files.items() if not isinstance(value, StudioError)})
    errors = {name: str(value) for name, value in files.items() if isinstance(value, StudioError)}
    if args.json:
        print_json({**result, "errors": errors})
    else:
        for key, value in result.items():
            if value:
                print(f"{key}: {value}")
    for name, message in errors.items():
        print(f"error: {name}: {message}", file=sys.stderr)
    return 2 if errors else 0


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
