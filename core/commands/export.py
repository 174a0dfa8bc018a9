"""`python -m core export RUN_ID --merged DIR [--gguf FILE]`: merged safetensors model, Ollama Modelfile, GGUF."""
from __future__ import annotations

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="merge a run's adapter into a full model (and GGUF)")
    parser.add_argument("run_id")
    parser.add_argument("--merged", required=True, help="new folder for the merged safetensors model + Modelfile")
    parser.add_argument("--gguf", default=None, help="also write an F32 GGUF file (embedded base only)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_export)


def _export(args) -> int:
    from core.settings import get_workspace
    from core.training import export_gguf, export_merged

    ws = get_workspace(args.workspace)
    merged = export_merged(ws, args.run_id, args.merged)
    gguf = export_gguf(ws, args.run_id, merged, args.gguf) if args.gguf else None
    if args.json:
        print_json({"merged": str(merged), "modelfile": str(merged / "Modelfile"), "gguf": str(gguf) if gguf else None})
    else:
        print(f"merged model: {merged}\nOllama Modelfile: {merged / 'Modelfile'}")
        if gguf:
            print(f"GGUF: {gguf}")
    return 0
