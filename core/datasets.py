"""Training rows: build them from a knowledge base, import them from JSONL/CSV, validate, split, save, load.

Every row has the canonical fields `instruction`, `input`, `output` and a `source` link back to the
chunk it came from (chunk_id, document, page); `prompt`/`completion` is the same row seen as a
prompt-completion pair. Rows are saved under `workspace.datasets/<id>/` (train.jsonl, heldout.jsonl,
meta.json, all atomic) and registered in the SQLite `datasets` table.

Style rows are built deterministically from the chunk's own sentences so the format is learnable
and checkable: `follows_style(text, rule)` is the check the evaluation uses on generated answers.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
import re
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from core.errors import StudioError
from core.settings import Workspace
from core.storage import atomic_write_json, atomic_write_text, connect, ensure_schema, read_json, transaction

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    style_rule TEXT,
    origin TEXT,
    train_rows INTEGER NOT NULL,
    heldout_rows INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""

KINDS = ("qa", "summary", "style", "imported")
FORMATS = ("instruction", "prompt_completion")
DATASET_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
DEFAULT_STYLE = "Answer in 3 bullets, then one line of risks."

# Style rules the evaluation can check. Each maps to a deterministic builder below.
STYLE_RULES = {
    "bullets3_risk": 'exactly 3 lines starting with "- ", then one line starting with "Risks:"',
    "bullets3": 'exactly 3 lines starting with "- "',
    "tldr": 'one line starting with "TL;DR: "',
}
# Neutral instructions: the style is *not* described in the prompt, so following it is learned behaviour.
STYLE_INSTRUCTIONS = (
    "What does this passage say?",
    "Explain this passage.",
    "Tell me about this text.",
    "What should I know from this passage?",
    "Brief me on this text.",
)
_RISK_WORDS = re.compile(
    r"\b(risk\w*|danger\w*|crisis|fail\w*|loss\w*|threat\w*|declin\w*|however|although|disease\w*|war|death\w*|damage\w*|problem\w*|concern\w*)\b",
    re.IGNORECASE,
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"[A-Za-z][A-Za-z\-']+")
_STOP = set(
    "the a an and or of to in on for with by as at from is are was were be been this that these those it its "
    "which who whom whose their there they he she his her we our you your not but also into than then over".split()
)


# ---------------------------------------------------------------- data types
@dataclass(frozen=True)
class DatasetBuildSettings:
    """How rows are built from a knowledge base."""

    kind: str = field(default="qa", metadata={"help": "qa: question-answer pairs; summary: 3-bullet summaries; style: a voice/format"})
    style: str = field(default=DEFAULT_STYLE, metadata={"help": "the voice/format style rows teach (style kind only)"})
    use_model: bool = field(default=False, metadata={"help": "qa: ask the current model for questions (slow); off = extractive, no model"})
    max_rows: int = field(default=200, metadata={"help": "stop after this many rows"})
    max_input_chars: int = field(default=900, metadata={"help": "chunk text longer than this is cut at a sentence boundary"})
    seed: int = 0

    def validate(self) -> None:
        if self.kind not in ("qa", "summary", "style"):
            raise StudioError(f"Unknown dataset kind {self.kind!r}; choose qa, summary or style.")
        if self.max_rows < 1:
            raise StudioError("Max rows must be at least 1.")
        if self.kind == "style" and not self.style.strip():
            raise StudioError("Describe the style for style rows, e.g. 'answer in 3 bullets, then one line of risks'.")


@dataclass
class ValidationReport:
    """What an upload or an edit looks like: the good rows plus line-numbered problems."""

    rows: list[dict] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, message)
    duplicates: int = 0
    too_long: list[int] = field(default_factory=list)  # lines whose prompt+output exceed max_length tokens
    max_length: int = 0
    total_lines: int = 0
    detected_format: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    def summary(self) -> str:
        parts = [f"{len(self.rows)} valid rows"]
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates removed")
        if self.too_long:
            parts.append(f"{len(self.too_long)} rows longer than {self.max_length} tokens (they will be truncated)")
        return ", ".join(parts)


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    kind: str
    format: str
    style_rule: str | None
    origin: str
    train_rows: int
    heldout_rows: int
    seed: int
    created_at: str


# ---------------------------------------------------------------- rows
def make_row(instruction: str, input: str, output: str, source: dict | None = None) -> dict:
    """A canonical row: instruction/input/output plus its prompt/completion view and source link."""
    instruction, input, output = (instruction or "").strip(), (input or "").strip(), (output or "").strip()
    prompt = f"{instruction}\n\n{input}" if input else instruction
    return {
        "instruction": instruction,
        "input": input,
        "output": output,
        "prompt": prompt,
        "completion": output,
        "source": dict(source or {}),
    }


def row_messages(row: dict, system: str | None = None) -> list[dict]:
    """The chat a row trains: the same system prompt and user turn the Compare page sends, plus the answer."""
    from core.generation import build_messages

    return build_messages(row["prompt"], system=system) + [{"role": "assistant", "content": row["output"]}]


def split_sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text or "").strip()
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if len(s.strip()) > 1]


def _clip_words(sentence: str, limit: int, max_chars: int = 90) -> str:
    """At most `limit` words and `max_chars` characters, so style answers stay short (cheap to learn and to generate)."""
    words = sentence.split()
    kept: list[str] = []
    for word in words[:limit]:
        if kept and len(" ".join(kept + [word])) > max_chars:
            break
        kept.append(word)
    if len(kept) == len(words):
        return sentence
    return " ".join(kept).rstrip(",;:") + " ..."


def _clip_chars(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    kept, total = [], 0
    for sentence in split_sentences(text):
        if total + len(sentence) > limit and kept:
            break
        kept.append(sentence)
        total += len(sentence) + 1
    return " ".join(kept)[: limit + 200]


def _topic(sentence: str) -> str:
    """A short key phrase of a sentence: its first few content words."""
    words = [w for w in _WORD.findall(sentence) if w.lower() not in _STOP]
    return " ".join(words[:4]) or sentence[:40]


# ---------------------------------------------------------------- style rules
def detect_style_rule(style: str) -> str:
    """Map the user's style description to a checkable rule."""
    text = (style or "").lower()
    if "tl;dr" in text or "tldr" in text or "one line" in text and "bullet" not in text:
        return "tldr"
    if "bullet" in text and "risk" in text:
        return "bullets3_risk"
    if "bullet" in text:
        return "bullets3"
    return "bullets3_risk"


def render_style(sentences: Sequence[str], rule: str) -> str:
    """Deterministic output in the given format, made only from the chunk's sentences."""
    if rule not in STYLE_RULES:
        raise StudioError(f"Unknown style rule {rule!r}; known: {', '.join(STYLE_RULES)}.")
    body = [s for s in sentences if len(s.split()) >= 4] or list(sentences)
    if rule == "tldr":
        return "TL;DR: " + _clip_words(body[0] if body else "the passage is empty.", 25)
    picked = body[:3]
    if len(picked) < 3:  # too few sentences: use clauses, so the 3 bullets stay distinct (repeats teach the model to skip one)
        clauses = [c.strip() for s in body for c in re.split(r"[;,]\s+", s) if len(c.split()) >= 4]
        clauses = list(dict.fromkeys(clauses))
        picked = clauses[:3] if len(clauses) >= 3 else ((body * 3)[:3] or ["the passage is empty."] * 3)
    lines = [f"- {_clip_words(s, 12)}" for s in picked]
    if rule == "bullets3_risk":
        # a risk sentence the bullets did not already use, else a fixed caution line
        risky = next((s for s in body[3:] if _RISK_WORDS.search(s)), None)
        if risky:
            lines.append(f"Risks: {_clip_words(risky, 12)}")
        else:
            lines.append("Risks: none stated in the source; verify before relying on it.")
    return "\n".join(lines)


def follows_style(text: str, rule: str) -> bool:
    """True when a generated answer follows the rule exactly (blank lines ignored)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if rule == "bullets3_risk":
        return len(lines) == 4 and all(l.startswith("- ") for l in lines[:3]) and lines[3].startswith("Risks:")
    if rule == "bullets3":
        return len(lines) == 3 and all(l.startswith("- ") for l in lines)
    if rule == "tldr":
        return len(lines) == 1 and lines[0].startswith("TL;DR: ")
    raise StudioError(f"Unknown style rule {rule!r}; known: {', '.join(STYLE_RULES)}.")


# ---------------------------------------------------------------- building from chunks
QA_PROMPT = (
    "Read the passage and write one question it answers, then the answer.\n"
    "Reply exactly as:\nQ: <question>\nA: <answer>\n\nPassage:\n{passage}"
)
# SmolLM2 often answers "Question: ... / Answer: ..." instead of the asked "Q: / A:"; accept both
_QA_PARSE = re.compile(r"(?:Q|Question)\s*[:.]\s*(?P<q>.+?)\s*\n+\s*\**(?:A|Answer)\**\s*[:.]\s*(?P<a>.+)", re.DOTALL | re.IGNORECASE)


def extractive_qa(sentences: Sequence[str]) -> list[tuple[str, str]]:
    """Model-free QA: 'What does the document say about <topic>?' -> the sentence."""
    pairs = []
    for sentence in sentences:
        if len(sentence.split()) < 6:
            continue
        pairs.append((f"What does the document say about {_topic(sentence)}?", sentence))
    return pairs


def interleave_documents(chunks: Iterable[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
    """Chunks taken round-robin across documents (each document's own order kept), so that a capped
    build (max_rows) draws from every document instead of filling up on the first one."""
    by_document: dict[str, list] = {}
    for item in chunks:
        by_document.setdefault(item[1], []).append(item)
    groups = list(by_document.values())
    return [group[i] for i in range(max((len(g) for g in groups), default=0)) for group in groups if i < len(group)]


def build_rows(
    chunks: Iterable[tuple[int, str, Any]],
    settings: DatasetBuildSettings = DatasetBuildSettings(),
    generate: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Rows from (chunk_id, document, Chunk) triples.

    `generate(prompt) -> text` is the current model (only for qa with use_model); when it is missing
    or its reply cannot be parsed, the extractive fallback is used so a build never fails on the model.
    """
    settings.validate()
    chunks = interleave_documents(chunks)
    rng = random.Random(settings.seed)
    rule = detect_style_rule(settings.style) if settings.kind == "style" else None
    rows: list[dict] = []
    for position, (chunk_id, document, chunk) in enumerate(chunks):
        if len(rows) >= settings.max_rows:
            break
        text = _clip_chars(chunk.text, settings.max_input_chars)
        sentences = split_sentences(text)
        source = {"chunk_id": chunk_id, "document": document, "page": chunk.page}
        if not sentences:
            continue
        if settings.kind == "qa":
            made = []
            if settings.use_model and generate is not None:
                reply = generate(QA_PROMPT.format(passage=text))
                match = _QA_PARSE.search(reply or "")
                if match and match["q"].strip() and match["a"].strip():
                    made.append((match["q"].strip().splitlines()[0], match["a"].strip().splitlines()[0], "model"))
            if not made:
                made = [(q, a, "extractive") for q, a in extractive_qa(sentences)[:2]]
            for question, answer, how in made:
                rows.append(make_row(question, "", answer, {**source, "method": how, "context": text}))
        elif settings.kind == "summary":
            rows.append(make_row("Summarize in 3 bullets.", text, render_style(sentences, "bullets3"), {**source, "method": "extractive"}))
        else:
            instruction = STYLE_INSTRUCTIONS[rng.randrange(len(STYLE_INSTRUCTIONS))]
            output = render_style(sentences, rule)
            bullets = [line for line in output.splitlines() if line.startswith("- ")]
            if len(set(bullets)) < len(bullets):  # a chunk too short for distinct bullets teaches the wrong count
                continue
            rows.append(make_row(instruction, text, output, {**source, "method": "style", "style_rule": rule}))
        if progress:
            progress(position + 1, len(chunks))
    rows = rows[: settings.max_rows]
    if not rows:
        raise StudioError("No training rows could be built: the knowledge base chunks have no usable sentences.")
    return rows


def build_from_knowledge_base(
    workspace: Workspace,
    kb_name: str,
    settings: DatasetBuildSettings = DatasetBuildSettings(),
    generate: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    from core.knowledge import all_chunks

    chunks = all_chunks(workspace, kb_name)
    if not chunks:
        raise StudioError(f"The knowledge base {kb_name!r} has no chunks yet; add documents on the Documents page first.")
    return build_rows(chunks, settings, generate, progress)


# ---------------------------------------------------------------- import and validation
def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _to_row(record: Any) -> tuple[dict | None, str | None, str]:
    """(row, error, format) for one parsed record."""
    if not isinstance(record, dict):
        return None, "not an object with fields", ""
    if "prompt" in record or "completion" in record:
        fmt, needed = "prompt_completion", ("prompt", "completion")
    else:
        fmt, needed = "instruction", ("instruction", "output")
    missing = [name for name in needed if name not in record or record[name] is None]
    if missing:
        return None, f"missing field {', '.join(repr(m) for m in missing)} (expected {' + '.join(needed)})", fmt
    values = {k: record.get(k) for k in ("instruction", "input", "output", "prompt", "completion")}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        return None, "fields must be text", fmt
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    if fmt == "prompt_completion":
        if not record["prompt"].strip():
            return None, "empty prompt", fmt
        if not record["completion"].strip():
            return None, "empty output (completion)", fmt
        row = make_row(record["prompt"], "", record["completion"], source)
    else:
        if not record["instruction"].strip():
            return None, "empty instruction", fmt
        if not record["output"].strip():
            return None, "empty output", fmt
        row = make_row(record["instruction"], record.get("input") or "", record["output"], source)
    return row, None, fmt


def validate_rows(
    records: Iterable[tuple[int, Any]],
    max_length: int = 512,
    count_tokens: Callable[[str], int] | None = None,
    initial_errors: Sequence[tuple[int, str]] = (),
) -> ValidationReport:
    """Check (line, record) pairs: fields present, outputs non-empty, duplicates removed, long rows counted."""
    count = count_tokens or _approx_tokens
    report = ValidationReport(max_length=max_length, errors=list(initial_errors))
    seen: set[tuple[str, str, str]] = set()
    formats = set()
    for line, record in records:
        report.total_lines += 1
        row, error, fmt = _to_row(record)
        if error:
            report.errors.append((line, error))
            continue
        formats.add(fmt)
        key = (row["instruction"], row["input"], row["output"])
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        if count(row["prompt"] + "\n" + row["output"]) > max_length:
            report.too_long.append(line)
        row["source"].setdefault("line", line)
        report.rows.append(row)
    report.errors.sort()
    report.detected_format = "/".join(sorted(formats))
    return report


def _decode_lines(data: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    lines, errors = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            errors.append((number, f"not valid UTF-8 text (byte {error.start + 1}); save the file as UTF-8"))
            continue
        if number == 1:
            text = text.lstrip("\ufeff")
        lines.append((number, text))
    return lines, errors


def parse_upload(
    name: str, data: bytes, max_length: int = 512, count_tokens: Callable[[str], int] | None = None
) -> ValidationReport:
    """Validate an uploaded JSONL or CSV file (instruction/input/output or prompt/completion)."""
    lines, decode_errors = _decode_lines(data)
    records: list[tuple[int, Any]] = []
    errors = list(decode_errors)
    if name.lower().endswith(".csv"):
        text_lines = [text for _, text in lines]
        numbers = [number for number, _ in lines]
        reader = csv.DictReader(io.StringIO("\n".join(text_lines)))
        if not reader.fieldnames:
            raise StudioError(f"{name}: the CSV has no header row; the first line must name the columns.")
        for record in reader:
            physical = numbers[min(reader.line_num, len(numbers)) - 1]
            records.append((physical, {k.strip(): v for k, v in record.items() if k}))
    elif name.lower().endswith((".jsonl", ".json", ".ndjson")):
        for number, text in lines:
            if not text.strip():
                continue
            try:
                records.append((number, json.loads(text)))
            except json.JSONDecodeError as error:
                errors.append((number, f"not valid JSON ({error.msg})"))
    else:
        raise StudioError(f"{name}: upload a .jsonl or .csv file.")
    return validate_rows(records, max_length, count_tokens, errors)


def rows_to_jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def export_rows(rows: Iterable[dict], fmt: str = "instruction") -> str:
    """JSONL in the chosen format (for download): instruction/input/output or prompt/completion."""
    if fmt not in FORMATS:
        raise StudioError(f"Unknown format {fmt!r}; choose {' or '.join(FORMATS)}.")
    keys = ("instruction", "input", "output") if fmt == "instruction" else ("prompt", "completion")
    return rows_to_jsonl({**{k: row[k] for k in keys}, "source": row.get("source", {})} for row in rows)


# ---------------------------------------------------------------- split, save, load
def split_rows(rows: Sequence[dict], heldout_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded shuffle then split; the same seed always gives the same split."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise StudioError("The held-out fraction must be at least 0 and below 1.")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_heldout = int(round(len(rows) * heldout_fraction))
    if heldout_fraction > 0 and len(rows) >= 2:
        n_heldout = max(1, min(n_heldout, len(rows) - 1))
    held = sorted(order[:n_heldout])
    train = sorted(order[n_heldout:])
    return [rows[i] for i in train], [rows[i] for i in held]


def validate_dataset_id(dataset_id: str) -> str:
    dataset_id = (dataset_id or "").strip()
    if not DATASET_ID_PATTERN.match(dataset_id):
        raise StudioError(f"Dataset id {dataset_id!r} is not allowed: use 1-64 letters, digits, dots, dashes or underscores.")
    return dataset_id


def _open(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def _runs_using_dataset(conn: sqlite3.Connection, dataset_id: str) -> list[str]:
    """Ids of training runs that name this dataset (the runs table belongs to training; it may not exist yet)."""
    try:
        rows = conn.execute("SELECT id FROM runs WHERE dataset_id = ? ORDER BY created_at", (dataset_id,)).fetchall()
    except sqlite3.OperationalError:  # no run was ever started in this workspace
        return []
    return [row["id"] for row in rows]


def check_dataset_id(workspace: Workspace, dataset_id: str, replace: bool = False) -> str:
    """Refuse an id that would silently replace stored rows.

    An existing dataset is replaced only when the caller asks (`--replace`, the page's confirm step), and never
    when a training run used it: the run's adapter would then name rows it was not trained on.
    """
    with _open(workspace) as conn:
        return _check_dataset_id(conn, workspace, dataset_id, replace)


def _check_dataset_id(conn: sqlite3.Connection, workspace: Workspace, dataset_id: str, replace: bool) -> str:
    dataset_id = validate_dataset_id(dataset_id)
    row = conn.execute("SELECT train_rows, heldout_rows FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    folder = workspace.datasets / dataset_id
    if row is None and not folder.exists():
        return dataset_id
    runs = _runs_using_dataset(conn, dataset_id)
    if runs:
        raise StudioError(
            f"The dataset {dataset_id!r} was used by training run {runs[-1]}"
            + (f" and {len(runs) - 1} more" if len(runs) > 1 else "")
            + ", so it is never replaced. Save the new rows under another id."
        )
    if not replace:
        what = f"{row['train_rows']} train + {row['heldout_rows']} held-out rows" if row is not None else "a folder on disk"
        raise StudioError(
            f"A dataset named {dataset_id!r} already exists ({what}). Choose another id, "
            "or replace it on purpose (--replace on the command line, 'Replace' on the Training data page)."
        )
    return dataset_id


def dataset_content_hash(workspace: Workspace, dataset_id: str) -> str:
    """SHA-256 of the stored train and held-out files: what a run records to name exactly the rows it used."""
    digest = hashlib.sha256()
    for split in ("train", "heldout"):
        path = workspace.datasets / dataset_id / f"{split}.jsonl"
        digest.update(split.encode() + b"\0")
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def save_dataset(
    workspace: Workspace,
    dataset_id: str,
    rows: Sequence[dict],
    kind: str = "imported",
    fmt: str = "instruction",
    heldout_fraction: float = 0.2,
    seed: int = 0,
    style_rule: str | None = None,
    origin: str = "",
    extra_meta: dict | None = None,
    replace: bool = False,
) -> DatasetInfo:
    """Split and save rows (train.jsonl, heldout.jsonl, meta.json) and register them in SQLite.

    An existing id is refused unless `replace` is set, and a dataset a run trained on is never replaced.
    """
    dataset_id = validate_dataset_id(dataset_id)
    if fmt not in FORMATS:
        raise StudioError(f"Unknown format {fmt!r}; choose {' or '.join(FORMATS)}.")
    if style_rule is not None and style_rule not in STYLE_RULES:
        raise StudioError(f"Unknown style rule {style_rule!r}; known: {', '.join(STYLE_RULES)}.")
    report = validate_rows(enumerate(rows, start=1), max_length=10**9)
    if report.errors:
        line, message = report.errors[0]
        raise StudioError(f"Row {line}: {message}. Fix the rows before saving ({len(report.errors)} problems).")
    if not report.rows:
        raise StudioError("The dataset is empty; build or upload rows first.")
    clean = [make_row(r["instruction"], r["input"], r["output"], r["source"]) for r in report.rows]
    train, heldout = split_rows(clean, heldout_fraction, seed)
    folder = workspace.datasets / dataset_id
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    train_text, heldout_text = rows_to_jsonl(train), rows_to_jsonl(heldout)
    meta = {
        "id": dataset_id, "kind": kind, "format": fmt, "style_rule": style_rule, "origin": origin,
        "train_rows": len(train), "heldout_rows": len(heldout), "seed": seed, "heldout_fraction": heldout_fraction,
        "duplicates_removed": report.duplicates, "created_at": created, **(extra_meta or {}),
    }
    with _open(workspace) as conn, transaction(conn):
        # The check runs under the write lock (BEGIN IMMEDIATE), so two saves of one id cannot both pass it.
        _check_dataset_id(conn, workspace, dataset_id, replace)
        atomic_write_text(folder / "train.jsonl", train_text)
        atomic_write_text(folder / "heldout.jsonl", heldout_text)
        meta["content_sha256"] = dataset_content_hash(workspace, dataset_id)
        atomic_write_json(folder / "meta.json", meta)
        conn.execute(
            """INSERT OR REPLACE INTO datasets (id, kind, format, style_rule, origin, train_rows, heldout_rows, seed, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (dataset_id, kind, fmt, style_rule, origin, len(train), len(heldout), seed, created),
        )
    log.info("Saved dataset %s: %d train, %d held-out rows", dataset_id, len(train), len(heldout))
    return get_dataset(workspace, dataset_id)


def list_datasets(workspace: Workspace) -> list[DatasetInfo]:
    with _open(workspace) as conn:
        rows = conn.execute("SELECT * FROM datasets ORDER BY created_at DESC, id").fetchall()
    return [DatasetInfo(**{k: row[k] for k in row.keys()}) for row in rows]


def get_dataset(workspace: Workspace, dataset_id: str) -> DatasetInfo:
    with _open(workspace) as conn:
        row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    if row is None:
        known = ", ".join(d.id for d in list_datasets(workspace)) or "none yet"
        raise StudioError(f"No dataset named {dataset_id!r} (known: {known}). Build or import one on the Training data page.")
    return DatasetInfo(**{k: row[k] for k in row.keys()})


def dataset_meta(workspace: Workspace, dataset_id: str) -> dict:
    get_dataset(workspace, dataset_id)
    return read_json(workspace.datasets / dataset_id / "meta.json", {}) or {}


def load_dataset_rows(workspace: Workspace, dataset_id: str, split: str = "train") -> list[dict]:
    """Rows of one split ("train" or "heldout"), each with instruction/input/output/prompt/completion/source."""
    if split not in ("train", "heldout"):
        raise StudioError(f"Unknown split {split!r}; use 'train' or 'heldout'.")
    get_dataset(workspace, dataset_id)
    path = workspace.datasets / dataset_id / f"{split}.jsonl"
    if not path.exists():
        raise StudioError(f"The dataset {dataset_id!r} has no {split} file; save it again from the Training data page.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def delete_dataset(workspace: Workspace, dataset_id: str) -> None:
    get_dataset(workspace, dataset_id)
    with _open(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
    shutil.rmtree(workspace.datasets / dataset_id, ignore_errors=True)
