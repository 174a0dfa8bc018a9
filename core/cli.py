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
