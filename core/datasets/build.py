"""Build training rows from a knowledge base's chunks: QA pairs, summaries or style rows, boilerplate skipped, best first."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from core.errors import StudioError
from core.settings import Workspace
from core.datasets.rows import (
    DEFAULT_STYLE, STYLE_INSTRUCTIONS, clip_chars, detect_style_rule, make_row, render_style, split_sentences, topic_of,
)

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
        pairs.append((f"What does the document say about {topic_of(sentence)}?", sentence))
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
        text = clip_chars(prose, settings.max_input_chars)
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
            longer = clip_chars(prose, 2 * settings.max_input_chars)  # the format needs 4 whole sentences: read on a little
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
