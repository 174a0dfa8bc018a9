"""`python -m core ...`: every command lives in core/commands/<name>.py with a `register(subparsers)`.

Each command module adds its own subparsers and sets `func=handler` where
`handler(args) -> int`. Modules are discovered, so features never edit this file.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from typing import Any, Sequence

import core.commands
from core.errors import StudioError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="RAG vs Fine-Tuning Studio")
    parser.add_argument("--workspace", help="workspace folder (default: $STUDIO_WORKSPACE or ./workspace)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(core.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"core.commands.{info.name}").register(subparsers)
    return parser


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine/--base-url/--model/--api-key-env, the same on ask, compare and evaluate."""
    parser.add_argument("--engine", default="auto", help="auto (llama.cpp for the embedded model on a CPU when installed), "
                        "transformers, llamacpp[:FILE.gguf] or openai[:URL]")
    parser.add_argument("--base-url", default="", help="openai engine: the server's base URL, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument("--model", default="", help="openai: the served model name; transformers: a Hugging Face id or folder "
                        "(default: the embedded SmolLM2)")
    parser.add_argument("--api-key-env", default="STUDIO_OPENAI_API_KEY", help="openai: environment variable holding the API key")


def engine_spec_from_args(args):
    from core.engines.registry import parse_engine_spec

    return parse_engine_spec(args.engine, model=args.model, base_url=args.base_url, api_key_env=args.api_key_env)


def engine_from_args(args, workspace, generator=None):
    """The engine the flags name; `generator` (a GeneratorSpec) for dtype overrides."""
    from core.engines.registry import open_engine

    return open_engine(engine_spec_from_args(args), workspace, generator)


def add_column_engine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--column-engine", action="append", default=[], metavar="VARIANT=SPEC",
                        help="give one variant its own engine, e.g. base=openai:http://127.0.0.1:11434/v1@llama3.2 (repeatable)")


def column_engine_specs(values: list[str]) -> dict:
    """["base=openai:URL@MODEL", "finetuned=llamacpp"] -> {variant: EngineSpec}."""
    from core.compare import parse_variants
    from core.engines.registry import parse_engine_spec

    specs = {}
    for value in values:
        variant, sep, text = value.partition("=")
        if not sep or not text.strip():
            raise StudioError(f"--column-engine {value!r}: write VARIANT=SPEC, e.g. base=openai:http://127.0.0.1:11434/v1@llama3.2.")
        spec_text, model = (text.strip().rsplit("@", 1) + [""])[:2] if "@" in text else (text.strip(), "")
        specs[parse_variants(variant)[0]] = parse_engine_spec(spec_text, model=model)
    return specs


def open_column_engines(args, workspace) -> dict:
    """{variant: engine} from --column-engine, one engine per distinct spec."""
    from core.engines.registry import open_engine

    opened: dict = {}
    engines = {}
    for variant, spec in column_engine_specs(args.column_engine).items():
        if spec not in opened:
            opened[spec] = open_engine(spec, workspace)
        engines[variant] = opened[spec]
    return engines


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
