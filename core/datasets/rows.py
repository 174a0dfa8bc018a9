"""One training row and its style: the canonical fields, sentences, and the style rules rows teach and answers are checked by.

Every row has `instruction`, `input`, `output` and a `source` link back to the chunk it came from (chunk_id,
document, page); `prompt`/`completion` is the same row seen as a prompt-completion pair. Style rows are built
deterministically from the chunk's own sentences so the format is learnable and checkable: `follows_style(text, rule)`
is the check the evaluation uses on generated answers.
"""
from __future__ import annotations

import re
from typing import Sequence

from core.errors import StudioError

KINDS = ("qa", "summary", "style", "imported")
FORMATS = ("instruction", "prompt_completion")
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


def clip_chars(text: str, limit: int) -> str:
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


def topic_of(sentence: str) -> str:
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
