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
# Words that make a sentence risk-bearing (the "Risks:" line is such a sentence of the source, never a constant).
_RISK_WORDS = re.compile(
    r"\b(risk\w*|danger\w*|crisis|crises|fail\w*|loss\w*|los[et]|threat\w*|declin\w*|however|although|disease\w*|wars?|"
    r"death\w*|damag\w*|problem\w*|concern\w*|could|uncertain\w*|advers\w*|depend\w*|disrupt\w*|restrict\w*|"
    r"competit\w*|vulnerab\w*|harm\w*|shortage\w*|litigation|conflict\w*|destr\w*|kill\w*|epidemic\w*|famine|"
    r"collaps\w*|recession\w*|inflation|limit\w*|difficult\w*|controvers\w*|critici\w*|reduc\w*|decreas\w*)\b",
    re.IGNORECASE,
)
# Second tier: uncertainty and limits ("may", "estimated", "disputed"), used when a passage states no risk outright.
_CAUTION_WORDS = re.compile(
    r"\b(?:may|might|estimat\w*|approximately|uncertain\w*|unclear|debat\w*|disput\w*|suggest\w*|believ\w*|"
    r"claim\w*|only|rare\w*|unknown|unlikely|possibl\w*|probabl\w*|challeng\w*|expens\w*|cost\w*|warn\w*|"
    r"requir\w*|despite|but|yet|lack\w*|without)\b(?! \d)"
)
_SENTENCE_SPLIT = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)]))\s+(?=[A-Z0-9\"'(“‘])")
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


BULLET_WORDS = 24  # a bullet longer than this is cut at a clause boundary (~30 tokens; 18 left 4 in 5 squad chunks without rows)
_CLAUSE_BREAK = re.compile(r"(?:;|:| —| -|,(?= (?:and|but|which|while|whereas|as|up|down|driven|compared|including|mainly|primarily|who|where|when|after|before|because|although|though|since|with|making|leading|resulting)\b))\s")


def short_form(sentence: str, max_words: int = BULLET_WORDS) -> str | None:
    """The sentence whole when short; else its first clause(s) up to a clause boundary, ending with a full stop.
    None when no boundary leaves at least 6 words: a bullet is never cut mid-clause and never ends in "…"."""
    sentence = sentence.strip()
    words = sentence.split()
    if len(words) <= max_words:
        return sentence
    head = " ".join(words[: max_words + 1])
    cuts = [m.start() for m in _CLAUSE_BREAK.finditer(head) if len(head[: m.start()].split()) >= 6]
    if not cuts:
        return None
    return head[: cuts[-1]].rstrip(" ,;:-—") + "."


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


# ---------------------------------------------------------------- boilerplate (measurable rules)
# Lines that are not prose: a table-of-contents entry (dot leaders then a page number), a row of figures, a check box.
_TOC_LINE = re.compile(r"(?:\.{4,}|…{2,}|\. \. \.)\s*\d{1,4}\s*$|^\s*table of contents\b", re.IGNORECASE)
_NUMBER = re.compile(r"^[($\-–]*[\d.,]+%?\)?$")
_CHECKBOX = re.compile(r"\[\s?[xX]?\s?\]|[☐☒☑]")
# Sentences of filing formalities: signatures, exhibits, safe-harbour and securities-law notices, cover-page questions.
_SIGNATURE = re.compile(r"/s/|duly caused this (?:report|statement) to be signed|thereunto duly authorized", re.IGNORECASE)
_LEGAL = re.compile(
    r"forward-looking statements?|safe harbou?r|Securities (?:Exchange )?Act of 19(?:33|34)|incorporated (?:herein )?by reference|"
    r"\bRule \d+[a-z]?-\d+|\bXBRL\b|18 U\.S\.C\.|Regulation S-[KTX]|Indicate by check mark|Exact name of registrant|"
    r"I\.R\.S\. Employer|Commission file number|disclosure controls and procedures|internal control over financial reporting|"
    r"undertake no obligation|all rights reserved|terms of use|privacy policy",
    re.IGNORECASE,
)
BOILERPLATE_REASONS = ("cover page", "table of contents", "signature block", "legal notice", "table of figures", "too little prose")
MIN_PROSE_SHARE = 0.5  # a chunk whose prose is under half its text is mostly form, not content


def _is_heading(sentence: str) -> bool:
    """'PART II. OTHER INFORMATION Item 1.': most words capitalised or numbers, as in titles, not in prose."""
    words = sentence.split()
    return sum(w[:1].isupper() or w[:1].isdigit() for w in words) >= 0.6 * len(words)


def _line_kind(line: str) -> str | None:
    tokens = line.split()
    if _TOC_LINE.search(line):
        return "table of contents"
    if _CHECKBOX.search(line):
        return "cover page"
    if _SIGNATURE.search(line) or re.match(r"^\s*(?:Date|By|Name|Title)\s*:", line):
        return "signature block"
    numbers = sum(bool(_NUMBER.match(t)) for t in tokens)
    if numbers >= 2 and numbers >= 0.35 * len(tokens):
        return "table of figures"
    return None


def prose_of(text: str) -> tuple[str, str | None, float]:
    """(prose, reason, prose share) of a chunk: form lines and legal or signature sentences removed.

    reason is None when the chunk is worth a training row; else the boilerplate kind that dominates it
    (one of BOILERPLATE_REASONS). prose share = characters of prose / characters of the chunk."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    total = sum(len(line) for line in lines) or 1
    dropped: dict[str, int] = {}
    kept_lines = []
    for line in lines:
        kind = _line_kind(line)
        if kind:
            dropped[kind] = dropped.get(kind, 0) + len(line)
        else:
            kept_lines.append(line)
    sentences = []
    for sentence in split_sentences(" ".join(kept_lines)):
        legal = len(_LEGAL.findall(sentence))
        if _SIGNATURE.search(sentence):
            dropped["signature block"] = dropped.get("signature block", 0) + len(sentence)
        elif legal:
            kind = "cover page" if re.search(r"check mark|registrant|Commission file|I\.R\.S\.", sentence, re.IGNORECASE) else "legal notice"
            dropped[kind] = dropped.get(kind, 0) + len(sentence)
        elif len(sentence.split()) >= 4 and sentence[-1:] in ".!?\"'”)" and not _is_heading(sentence):
            sentences.append(sentence)
        else:  # headings and fragments: neither form nor prose
            dropped["too little prose"] = dropped.get("too little prose", 0) + len(sentence)
    prose = " ".join(sentences)
    share = min(1.0, len(prose) / total)
    if share >= MIN_PROSE_SHARE and len(sentences) >= 2:
        return prose, None, share
    form = {kind: size for kind, size in dropped.items() if kind != "too little prose"}  # a named kind says more
    reason = max(form, key=form.get) if form else "too little prose"
    return prose, reason, share


def boilerplate_reason(text: str) -> str | None:
    """Why a chunk makes no training row (cover page, table of contents, signature block, legal notice,
    table of figures, too little prose), or None when it is mostly prose."""
    return prose_of(text)[1]


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


def risk_sentence(sentences: Sequence[str]) -> str | None:
    """The most risk-bearing sentence of the passage: 2 points per risk word ("could", "decline", "war"), 1 per word
    of caution ("may", "estimated", "only"); the later one on a tie. None when no sentence has either."""
    scored = [(2 * len(_RISK_WORDS.findall(s)) + len(_CAUTION_WORDS.findall(s)), i, s)
              for i, s in enumerate(sentences) if short_form(s)]
    scored = [item for item in scored if item[0] > 0]
    return max(scored)[2] if scored else None


def render_style(sentences: Sequence[str], rule: str) -> str:
    """Deterministic output in the given format, made only from the chunk's own whole sentences (or whole clauses).

    bullets3_risk reserves the most risk-bearing sentence for the "Risks:" line, and raises StudioError
    when the passage has none or too few distinct sentences: such a row would teach an invented line."""
    if rule not in STYLE_RULES:
        raise StudioError(f"Unknown style rule {rule!r}; known: {', '.join(STYLE_RULES)}.")
    # whole sentences only: a chunk's first words may continue a sentence cut by the chunk overlap
    body = [s for s in sentences if len(s.split()) >= 4 and not s[:1].islower()] or list(sentences)
    if rule == "tldr":
        first = next((short_form(s, 25) for s in body if short_form(s, 25)), None)
        if first is None:
            raise StudioError("The passage has no sentence short enough for a TL;DR line.")
        return "TL;DR: " + first
    risky = risk_sentence(body) if rule == "bullets3_risk" else None
    if rule == "bullets3_risk" and risky is None:
        raise StudioError("The passage states no risk, so a Risks: line would be invented.")
    picked = [short_form(s) for s in body if s != risky and short_form(s)][:3]
    if len(picked) < 3:  # too few sentences: whole clauses, so the 3 bullets stay distinct (repeats teach the model to skip one)
        clauses = [c.strip().rstrip(".") + "." for s in body if s != risky for c in re.split(r";\s+|,\s+(?=(?:and|but|which|while)\b)", s)
                   if 4 <= len(c.split()) <= BULLET_WORDS]
        clauses = list(dict.fromkeys(clauses))
        if len(clauses) < 3:
            raise StudioError("The passage has fewer than 3 distinct sentences for 3 bullets.")
        picked = clauses[:3]
    lines = [f"- {s}" for s in picked]
    if risky:
        lines.append(f"Risks: {short_form(risky)}")
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


def row_quality(prose_share: float, sentence_count: int, output: str | None = None) -> float:
    """0..1, higher first: mostly prose, enough sentences to choose from, and (style rows) an output of whole sentences."""
    whole = [line for line in (output or "").splitlines() if line.strip()]
    complete = sum(line.rstrip()[-1:] in ".!?\"'”)" for line in whole) / len(whole) if whole else 1.0
    return round(0.5 * prose_share + 0.3 * min(1.0, sentence_count / 6) + 0.2 * complete, 3)


def build_rows(
    chunks: Iterable[tuple[int, str, Any]],
    settings: DatasetBuildSettings = DatasetBuildSettings(),
    generate: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    skipped: list[dict] | None = None,
) -> list[dict]:
    """Rows from (chunk_id, document, Chunk) triples, best first (source.quality), boilerplate chunks skipped.

    `generate(prompt) -> text` is the current model (only for qa with use_model); when it is missing
    or its reply cannot be parsed, the extractive fallback is used so a build never fails on the model.
    `skipped`, when given, receives {document, page, reason} for every chunk that made no row.
    """
    settings.validate()
    chunks = interleave_documents(chunks)
    rng = random.Random(settings.seed)
    rule = detect_style_rule(settings.style) if settings.kind == "style" else None
    rows: list[dict] = []
    skipped = skipped if skipped is not None else []
    for position, (chunk_id, document, chunk) in enumerate(chunks):
        if len(rows) >= 3 * settings.max_rows:  # enough candidates to rank; the best max_rows are kept
            break
        if progress:
            progress(position + 1, len(chunks))
        source = {"chunk_id": chunk_id, "document": document, "page": chunk.page}
        prose, reason, share = prose_of(chunk.text)
        if reason:
            skipped.append({"document": document, "page": chunk.page, "reason": reason})
            continue
        text = _clip_chars(prose, settings.max_input_chars)
        sentences = split_sentences(text)
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
                rows.append(make_row(question, "", answer, {**source, "method": how, "context": text,
                                                            "quality": row_quality(share, len(sentences))}))
            continue
        try:
            output = render_style(sentences, "bullets3" if settings.kind == "summary" else rule)
        except StudioError as error:  # no risk sentence, too few sentences: a row would teach invented or repeated lines
            longer = _clip_chars(prose, 2 * settings.max_input_chars)  # the format needs 4 whole sentences: read on a little
            try:
                if longer == text:
                    raise
                text, sentences = longer, split_sentences(longer)
                output = render_style(sentences, "bullets3" if settings.kind == "summary" else rule)
            except StudioError:
                reason = ("no stated risk" if "no risk" in str(error) else
                          "fewer than 3 whole sentences" if "fewer than 3" in str(error) else str(error).rstrip("."))
                skipped.append({"document": document, "page": chunk.page, "reason": reason})
                continue
        quality = row_quality(share, len(sentences), output)
        if settings.kind == "summary":
            rows.append(make_row("Summarize in 3 bullets.", text, output, {**source, "method": "extractive", "quality": quality}))
        else:
            instruction = STYLE_INSTRUCTIONS[rng.randrange(len(STYLE_INSTRUCTIONS))]
            rows.append(make_row(instruction, text, output, {**source, "method": "style", "style_rule": rule, "quality": quality}))
    # best first; a stable sort keeps the round-robin order between equals, so a capped build still spans the documents
    rows = sorted(rows, key=lambda row: -row["source"]["quality"])[: settings.max_rows]
    if not rows:
        reasons = sorted({item["reason"] for item in skipped})
        raise StudioError("No training rows could be built: every chunk was skipped"
                          + (f" ({'; '.join(reasons[:4])})" if reasons else "") + ". Add documents with more running text.")
    return rows


def skipped_summary(skipped: Sequence[dict]) -> str:
    """'12 chunks skipped: 5 table of figures, 4 cover page, ...' for the page and the CLI."""
    if not skipped:
        return ""
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    parts = ", ".join(f"{n} {reason.rstrip('.')}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{len(skipped)} chunks skipped: {parts}"


def build_from_knowledge_base(
    workspace: Workspace,
    kb_name: str,
    settings: DatasetBuildSettings = DatasetBuildSettings(),
    generate: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    skipped: list[dict] | None = None,
) -> list[dict]:
    from core.knowledge import all_chunks

    chunks = all_chunks(workspace, kb_name)
    if not chunks:
        raise StudioError(f"The knowledge base {kb_name!r} has no chunks yet; add documents on the Documents page first.")
    return build_rows(chunks, settings, generate, progress, skipped)


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
