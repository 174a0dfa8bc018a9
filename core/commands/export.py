"""`python -m core export RUN_ID --merged DIR [--gguf FILE] [--lora-gguf FILE]`: merged model, GGUF, GGUF adapter, Modelfiles."""
from __future__ import annotations

from core.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="merge a run's adapter into a full model; GGUF through llama.cpp's converter")
    parser.add_argument("run_id")
    parser.add_argument("--merged", default=None, help="new folder for the merged safetensors model + Modelfile")
    parser.add_argument("--gguf", default=None, help="also write the merged model as one GGUF file (needs --merged)")
    parser.add_argument("--lora-gguf", default=None, help="write the adapter alone as a GGUF adapter (llama.cpp --lora, Ollama ADAPTER)")
    parser.add_argument("--gguf-type", default="f32", choices=("f32", "f16", "bf16", "q8_0", "auto"), help="GGUF tensor type")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_export)


def _export(args) -> int:
    from core.errors import StudioError
    from core.export import export_gguf, export_lora_gguf, export_merged
    from core.settings import get_workspace

    ws = get_workspace(args.workspace)
    if not (args.merged or args.lora_gguf):
        raise StudioError("Say what to export: --merged DIR (and --gguf FILE) and/or --lora-gguf FILE.")
    if args.gguf and not args.merged:
        raise StudioError("--gguf converts the merged model: add --merged DIR.")
    merged = export_merged(ws, args.run_id, args.merged) if args.merged else None
    gguf = export_gguf(ws, args.run_id, merged, args.gguf, args.gguf_type) if args.gguf else None
    # the merged GGUF already contains the adapter: the adapter's Modelfile points at a GGUF of the plain base
    lora = export_lora_gguf(ws, args.run_id, args.lora_gguf, args.gguf_type) if args.lora_gguf else None
    result = {"merged": str(merged) if merged else None, "modelfile": str(merged / "Modelfile") if merged else None,
              "gguf": str(gguf) if gguf else None, "lora_gguf": str(lora) if lora else None}
    if args.json:
        print_json(result)
    else:
        for key, value in result.items():
            if value:
                print(f"{key}: {value}")
    return 0
