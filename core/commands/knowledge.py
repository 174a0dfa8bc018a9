"""CLI: ingest, search, ask and kb (list, documents, remove)."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from core.errors import StudioError
from core.settings import get_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser("ingest", help="add documents to a knowledge base")
    ingest.add_argument("files", nargs="+", type=Path)
    ingest.add_argument("--kb", required=True, help="knowledge base name (created if missing)")
    ingest.add_argument("--chunk-size", type=int, default=None)
    ingest.add_argument("--chunk-overlap", type=int, default=None)
    ingest.add_argument("--read-seconds", type=float, default=None, help="wall time to read one file (default 60)")
    ingest.add_argument("--max-page-mb", type=float, default=None, help="decompressed content per PDF page, MB (default 16)")
    ingest.add_argument("--max-chars", type=int, default=None, help="characters of text per file (default 20,000,000)")
    ingest.add_argument("--max-memory-mb", type=int, default=None, help="memory of the process reading one file, MB (default 4096)")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(func=cmd_ingest)

    search = subparsers.add_parser("search", help="top-k chunks for a query, or for every row of --queries FILE")
    search.add_argument("query", nargs="?")
    search.add_argument("--kb", required=True)
    search.add_argument("--k", type=int, default=5)
    search.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "lexical"))
    search.add_argument("--queries", type=Path, help="JSONL file with a `question` field per row")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)

    ask = subparsers.add_parser("ask", help="a grounded answer with sources")
    ask.add_argument("question")
    ask.add_argument("--kb", required=True)
    ask.add_argument("--k", type=int, default=4)
    ask.add_argument("--max-new-tokens", type=int, default=150)
    from core.cli import add_engine_arguments

    add_engine_arguments(ask)
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(func=cmd_ask)

    kb = subparsers.add_parser("kb", help="list knowledge bases and their documents, remove documents")
    kb_sub = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)
    kb_list = kb_sub.add_parser("list", help="knowledge bases with document and chunk counts")
    kb_list.add_argument("--json", action="store_true")
    kb_list.set_defaults(func=cmd_kb_list)
    kb_docs = kb_sub.add_parser("docs", help="documents of a knowledge base")
    kb_docs.add_argument("name")
    kb_docs.add_argument("--json", action="store_true")
    kb_docs.set_defaults(func=cmd_kb_docs)
    kb_info = kb_sub.add_parser("info", help="a knowledge base's vector index: type, memory, measured recall@10")
    kb_info.add_argument("name")
    kb_info.add_argument("--json", action="store_true")
    kb_info.set_defaults(func=cmd_kb_info)
    kb_remove = kb_sub.add_parser("remove", help="remove one document (and its vectors)")
    kb_remove.add_argument("name")
    kb_remove.add_argument("document")
    kb_remove.set_defaults(func=cmd_kb_remove)
    kb_backups = kb_sub.add_parser("backups", help="the rolling backups of the catalogue (studio.db), newest first")
    kb_backups.add_argument("--json", action="store_true")
    kb_backups.set_defaults(func=cmd_kb_backups)
    kb_restore = kb_sub.add_parser("restore-backup", help="replace a damaged studio.db by its newest (or a given) backup")
    kb_restore.add_argument("backup", nargs="?", type=Path, help="a file from `kb backups` (default: the newest)")
    kb_restore.set_defaults(func=cmd_kb_restore)


def _embedder(ws=None, kb_name=None):
    """The kb's own embedder (model and precision) when it exists, else the default for a new one."""
    from core.catalogue import list_knowledge_bases, normalize_kb_name
    from core.embedding import load_sentence_embedder

    if ws is not None and any(kb.name == normalize_kb_name(kb_name) for kb in list_knowledge_bases(ws)):
        return _embedder_for_kb(ws, kb_name)
    return load_sentence_embedder(workspace=ws)


def _embedder_for_kb(ws, name):
    from core.evaluation import embedder_for_kb

    return embedder_for_kb(ws, name)


# Escape sequences (CSI "ESC [ ... letter", OSC "ESC ] ... BEL|ST", two-byte ESC x) and other control
# characters: document text is untrusted, and `\033]0;...\007\033[2J` would retitle and clear the terminal.
_TERMINAL_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Document or model text fit to print on a terminal: escape sequences and control characters removed."""
    return _CONTROL.sub("", _TERMINAL_ESCAPES.sub("", text or ""))


def _print(payload, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False, default=str) if as_json else text)


def cmd_ingest(args) -> int:
    from core.documents import ExtractionLimits
    from core.chunking import ChunkingSettings
    from core.ingest import IngestProgress, ingest_files

    ws = get_workspace(args.workspace)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        raise StudioError(f"File not found: {', '.join(missing)}")
    chunking = None
    if args.chunk_size or args.chunk_overlap is not None:
        defaults = ChunkingSettings()
        chunking = ChunkingSettings(args.chunk_size or defaults.chunk_size, defaults.chunk_overlap if args.chunk_overlap is None else args.chunk_overlap)

    def progress(event: IngestProgress) -> None:
        if event.stage == "done" and not args.json:
            print(f"[{event.file_index + 1}/{event.file_count}] {event.file_name}", file=sys.stderr)

    limits = ExtractionLimits(**{name: value for name, value in (
        ("seconds_per_file", args.read_seconds), ("max_page_stream_mb", args.max_page_mb), ("max_total_chars", args.max_chars), ("max_memory_mb", args.max_memory_mb),
    ) if value is not None})
    # Paths, not bytes: each file is read by its own bounded worker, never the whole batch in memory.
    results = ingest_files(ws, args.kb, [(path.name, path) for path in args.files], _embedder(ws, args.kb), chunking, progress, limits)
    lines = [f"{'✓' if r.status == 'added' else '=' if r.status == 'duplicate' else '✗'} {r.message}" for r in results]
    added = sum(r.status == "added" for r in results)
    failed = sum(r.status == "failed" for r in results)
    lines.append(f"{added} added, {sum(r.status == 'duplicate' for r in results)} duplicate, {failed} failed → knowledge base {args.kb!r}")
    _print([r.__dict__ for r in results], args.json, "\n".join(lines))
    return 1 if failed else 0


def cmd_search(args) -> int:
    from core.retrieval import RetrievalSettings, search_many

    ws = get_workspace(args.workspace)
    if args.queries:
        if not args.queries.is_file():
            raise StudioError(f"Queries file not found: {args.queries}")
        rows = []
        for number, line in enumerate(args.queries.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise StudioError(f"{args.queries}:{number}: not valid JSON ({error.msg}).") from error
            if not isinstance(row, dict) or not str(row.get("question", "")).strip():
                raise StudioError(f"{args.queries}:{number}: a row needs a non-empty `question` field.")
            rows.append(row)
        queries = [str(row["question"]) for row in rows]
    elif args.query:
        rows, queries = [{}], [args.query]
    else:
        raise StudioError("Give a query, or --queries FILE.jsonl.")
    results = search_many(ws, args.kb, queries, _embedder_for_kb(ws, args.kb), RetrievalSettings(k=args.k, mode=args.mode))
    payload = [
        {**({"id": row["id"]} if "id" in row else {}), "question": query, "hits": [hit.to_dict() for hit in hits]}
        for row, query, hits in zip(rows, queries, results)
    ]
    text = []
    for item in payload:
        text.append(f"? {terminal_safe(item['question'])}")
        for hit in item["hits"]:
            snippet = " ".join(terminal_safe(hit["text"]).split())[:160]
            text.append(f"  {hit['rank']}. {hit['score']:.3f}  {terminal_safe(hit['document'])} p.{hit['page']}  {snippet}")
    _print(payload if args.queries else payload[0], args.json, "\n".join(text))
    return 0


def cmd_ask(args) -> int:
    from core.ask import ask
    from core.cli import engine_from_args
    from core.generation import DecodingSettings
    from core.retrieval import RetrievalSettings

    ws = get_workspace(args.workspace)
    embedder = _embedder_for_kb(ws, args.kb)
    engine = engine_from_args(args, ws)
    answer = ask(ws, args.kb, args.question, embedder, engine, RetrievalSettings(k=args.k), DecodingSettings(max_new_tokens=args.max_new_tokens))
    lines = [terminal_safe(answer.text), "", f"engine: {terminal_safe(answer.engine)} · {terminal_safe(answer.model)}"]
    for number, hit in enumerate(answer.sources, start=1):
        lines.append(f"[{number}] {terminal_safe(hit.document)} p.{hit.page} (score {hit.score:.2f})")
    if answer.stats.new_tokens:
        lines.append(f"{answer.stats.total_s:.1f} s, {answer.stats.new_tokens} tokens, {answer.stats.tokens_per_s:.1f} tokens/s")
    _print(answer.to_dict(), args.json, "\n".join(lines))
    return 0


def cmd_kb_list(args) -> int:
    from core.catalogue import list_knowledge_bases

    bases = list_knowledge_bases(get_workspace(args.workspace))
    text = "\n".join(f"{kb.name}: {kb.document_count} documents, {kb.chunk_count} chunks, {kb.embedding_model}" for kb in bases)
    _print([kb.__dict__ for kb in bases], args.json, text or "No knowledge bases yet. Create one with `python -m core ingest FILES --kb NAME`.")
    return 0


def cmd_kb_docs(args) -> int:
    from core.catalogue import list_documents, list_ingest_failures

    ws = get_workspace(args.workspace)
    documents = list_documents(ws, args.name)
    failures = list_ingest_failures(ws, args.name)
    text = "\n".join(f"{d.name}: {d.page_count} pages, {d.chunk_count} chunks" for d in documents) or "No documents."
    if failures:
        text += "\nNot added (kept until dismissed in the app):\n" + "\n".join(f"✗ {terminal_safe(f.message)}" for f in failures)
    _print([d.__dict__ for d in documents], args.json, text)
    return 0


def cmd_kb_info(args) -> int:
    from core.catalogue import get_knowledge_base
    from core.index_cache import index_details, recall_below_goal, recall_text

    ws = get_workspace(args.workspace)
    kb = get_knowledge_base(ws, args.name)
    details = index_details(ws, kb) if kb.chunk_count else {}
    text = f"{kb.name}: {kb.document_count} documents, {kb.chunk_count} chunks, {kb.embedding_model}, {kb.dimension} dimensions"
    if details:
        text += (f"\nVector index: {details['index_type']}\n{details['vectors']:,} vectors, ~{(details['memory_bytes'] or 0) / 2**20:.1f} MB "
                 f"in memory, {(details['file_bytes'] or 0) / 2**20:.1f} MB on disk\n{recall_text(details)}")
        if recall_below_goal(details):
            text += f"\nwarning: recall@10 is below the goal of {details['recall_goal']:.2f}: dense search may miss chunks."
    _print({"name": kb.name, "documents": kb.document_count, "chunks": kb.chunk_count, "index": details}, args.json, terminal_safe(text))
    return 0


def cmd_kb_remove(args) -> int:
    from core.ingest import remove_document

    removed = remove_document(get_workspace(args.workspace), args.name, args.document)
    print(f"Removed {args.document} ({removed} chunks) from {args.name}.")
    return 0


def cmd_kb_backups(args) -> int:
    from core.storage import list_backups

    backups = list_backups(get_workspace(args.workspace))
    text = "\n".join(f"{path}  {path.stat().st_size / 2**20:.1f} MB" for path in backups)
    _print([str(path) for path in backups], args.json, text or "No backups yet: one is made after each successful ingest or run.")
    return 0


def cmd_kb_restore(args) -> int:
    from core.storage import restore_catalogue

    ws = get_workspace(args.workspace)
    restored = restore_catalogue(ws, args.backup.resolve() if args.backup else None)
    print(f"Restored {ws.db_path} from {restored}; the replaced file is kept beside it as studio.db.damaged-<time>.")
    return 0
