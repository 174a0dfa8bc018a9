"""Answers that do not loop: a pure streaming filter over text pieces, whatever engine made them.

Small models (SmolLM2-135M) fall into loops under greedy decoding: "Increased risk of increased risk of
...", or the same sentence five times. A decoding penalty alone does not fix that without breaking other
things (a repetition penalty of 1.1 broke the taught 3-bullet format, CONTRIBUTING.md), and engines differ
in the knobs they offer (transformers, llama.cpp, OpenAI-compatible servers). So the last line of defence
works on text only:

- a sentence or line that repeats an earlier one (normalised, >= 3 words) ends the answer before it;
- a run of words that repeats itself back to back (a 2-12 word phrase 3 times, one word 4 times) ends
  the answer after its first copy.

`RepeatGuard.feed(piece)` returns the text that is safe to show now: it holds back only the tail that
could turn out to be a repeat (an unfinished sentence that starts like an earlier one, or words that repeat
the words just before them), so what was shown never has to be taken back. `guard_text` wraps a stream of
pieces; `guard_events` wraps an engine's stream of StreamEvents (one guard per answer key) and closes the
engine stream once every answer has stopped, so the engine stops generating too.

`no_repeat_ngram_bans` is the token-level companion an engine can apply while decoding (generated tokens
only: banning n-grams of the prompt would stop RAG quoting its sources).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

MIN_SEGMENT_WORDS = 3  # "Yes." twice is not a loop; a repeated 3-word sentence or bullet is
MAX_PHRASE_WORDS = 12  # longest back-to-back phrase loop looked for
PHRASE_REPEATS = 3  # "risk of increased risk of increased risk of": a 2+ word phrase 3 times in a row
WORD_REPEATS = 4  # "very very very very": one word needs 4 in a row (3 happens in real text: "no, no, no")

_WORD = re.compile(r"\S+")
_SEGMENT_END = re.compile(r"\n|(?<=[.!?])\s")
# A period after these does not end a sentence ("Northwind Circuits, Inc. designs", "Inc. Revenue" is one line).
_ABBREVIATION = re.compile(r"(?:\b(?:inc|corp|co|ltd|llc|plc|mr|mrs|ms|dr|st|no|vs|etc|jr|sr|fig|approx)|\b[a-z]|\b(?:e\.g|i\.e|u\.s))\.$", re.IGNORECASE)


def _segment_ends(text: str):
    """Ends of lines and sentences, skipping the period of an abbreviation or an initial."""
    for match in _SEGMENT_END.finditer(text):
        if match.group() != "\n" and _ABBREVIATION.search(text[max(0, match.start() - 8) : match.start()]):
            continue
        yield match


def _norm_word(word: str) -> str:
    return re.sub(r"[^\w%$]", "", word.lower())


def _norm_words(text: str) -> list[str]:
    return [w for w in (_norm_word(m) for m in _WORD.findall(text)) if w]


def _segment_key(text: str) -> str:
    """A line or sentence compared without case, punctuation, bullet marks or citation numbers."""
    text = re.sub(r"\[\d+\]", " ", text)
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", text)
    return " ".join(_norm_words(text))


@dataclass
class _Scan:
    safe: int  # characters that may be shown
    stop: int | None = None  # cut the answer here and stop
    reason: str = ""


def _scan(text: str) -> _Scan:
    """Where the text can be shown up to, and where it must stop if it loops (pure, recomputed per piece)."""
    # Lines and sentences: completed ones must not repeat; an unfinished one that starts like a seen one waits.
    seen: set[str] = set()
    start = 0
    hold = len(text)
    for match in _segment_ends(text):
        segment = text[start : match.end()]
        key = _segment_key(segment)
        if key and len(key.split()) >= MIN_SEGMENT_WORDS:
            if key in seen:
                return _Scan(start, start, f"repeated line: {segment.strip()[:60]}")
            seen.add(key)
        start = match.end()
    tail_key = _segment_key(text[start:])
    if tail_key and any(key.startswith(tail_key) for key in seen):
        hold = start

    # Phrases that repeat back to back, over the words of the whole answer.
    spans = [(m.start(), _norm_word(m.group())) for m in _WORD.finditer(text)]
    if spans and not text[-1:].isspace():
        # A word still being written could be the start of a repeat: show whole words only, judge whole words only.
        hold = min(hold, spans[-1][0])
        spans = spans[:-1]
    spans = [(pos, w) for pos, w in spans if w]
    words = [w for _, w in spans]
    n = len(words)
    earliest: tuple[int, int, int] | None = None  # (word index where the repeats start, phrase length)
    for k in range(1, MAX_PHRASE_WORDS + 1):
        need = ((WORD_REPEATS if k == 1 else PHRASE_REPEATS) - 1) * k
        run = 0  # how many words in a row equal the word k places before
        for i in range(k, n):
            run = run + 1 if words[i] == words[i - k] else 0
            if run >= need:
                first = i - run + 1
                if earliest is None or first < earliest[0]:
                    earliest = (first, k)
                break
        if run:  # the tail may be the start of a loop: hold it back
            hold = min(hold, spans[n - run][0])
    if earliest is not None:
        first, k = earliest
        cut = spans[first][0]
        return _Scan(cut, cut, f"repeated phrase: {' '.join(words[first - k : first])}")
    return _Scan(hold)


@dataclass
class RepeatGuard:
    """Feed text pieces; get back what is safe to show. `stopped` once the answer loops."""

    text: str = ""
    shown: int = 0
    stopped: bool = False
    reason: str = ""
    _stop_at: int | None = field(default=None, repr=False)

    def feed(self, piece: str) -> str:
        if self.stopped or not piece:
            return ""
        self.text += piece
        scan = _scan(self.text)
        if scan.stop is not None:
            self.stopped, self.reason, self._stop_at = True, scan.reason, scan.stop
            safe = scan.stop
        else:
            safe = scan.safe
        if safe <= self.shown:
            return ""
        out, self.shown = self.text[self.shown : safe], safe
        return out

    def finish(self) -> str:
        """The held-back rest when the answer ended; a loop in its last words still cuts it."""
        if self.stopped:
            return ""
        scan = _scan(self.text + "\n")  # the last word and sentence are complete now
        safe = len(self.text)
        if scan.stop is not None:
            self.stopped, self.reason, self._stop_at = True, scan.reason, min(scan.stop, safe)
            safe = self._stop_at
        out, self.shown = self.text[self.shown : max(safe, self.shown)], max(safe, self.shown)
        return out

    @property
    def answer(self) -> str:
        """The whole answer as shown: cut before the loop when it looped."""
        return self.text[: self._stop_at] if self.stopped else self.text


def guard_text(pieces: Iterable[str], enabled: bool = True, guard: RepeatGuard | None = None) -> Iterator[str]:
    """A stream of text pieces without loops; closes `pieces` (so the engine stops) once the answer loops."""
    if not enabled:
        yield from pieces
        return
    guard = guard if guard is not None else RepeatGuard()
    iterator = iter(pieces)
    try:
        for piece in iterator:
            out = guard.feed(piece)
            if out:
                yield out
            if guard.stopped:
                return
        rest = guard.finish()
        if rest:
            yield rest
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def guard_events(events: Iterable, keys: Sequence[str] = (), enabled: bool = True) -> Iterator:
    """An engine's StreamEvents (key, kind, text, stats) with each key's text guarded.

    A key that loops gets its "done" event at once and nothing after; once every key in `keys` has
    finished, the engine stream is closed so it stops decoding (TorchEngine cancels on close).
    """
    if not enabled:
        yield from events
        return
    guards: dict[str, RepeatGuard] = {}
    finished: set[str] = set()
    iterator = iter(events)
    try:
        for event in iterator:
            key = event.key
            if key in finished:
                continue
            guard = guards.setdefault(key, RepeatGuard())
            if event.kind == "text":
                out = guard.feed(event.text)
                if out or not event.text:
                    yield _with_text(event, out)
                if guard.stopped:
                    finished.add(key)
                    yield _with_kind(event, "done")
                    if keys and finished.issuperset(keys):
                        return
                continue
            if event.kind in ("done", "error"):  # an error keeps the text that came before it
                rest = guard.finish()
                if rest:
                    yield _with_text(_with_kind(event, "text"), rest)
                finished.add(key)
            yield event
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _with_text(event, text: str):
    return type(event)(event.key, event.kind, text, event.stats)


def _with_kind(event, kind: str):
    return type(event)(event.key, kind, "", event.stats)


# ---------------------------------------------------------------- measurement
def repeated_line_count(text: str) -> int:
    """How often the most repeated line or sentence (>= MIN_SEGMENT_WORDS words, normalised) occurs."""
    counts: Counter = Counter()
    text, start = (text or "") + "\n", 0
    for match in _segment_ends(text):
        key = _segment_key(text[start : match.end()])
        start = match.end()
        if key and len(key.split()) >= MIN_SEGMENT_WORDS:
            counts[key] += 1
    return max(counts.values(), default=0)


def has_phrase_loop(text: str) -> bool:
    """A 2-12 word phrase three times back to back, or one word four times, anywhere in the text."""
    words = _norm_words(text or "")
    for k in range(1, MAX_PHRASE_WORDS + 1):
        need = (WORD_REPEATS if k == 1 else PHRASE_REPEATS) - 1
        run = 0
        for i in range(k, len(words)):
            run = run + 1 if words[i] == words[i - k] else 0
            if run >= need * k:
                return True
    return False


def loops(text: str, times: int = 3) -> bool:
    """The benchmark's loop test: a line or sentence repeated `times`+ times, or a back-to-back phrase loop."""
    return repeated_line_count(text) >= times or has_phrase_loop(text)


# ---------------------------------------------------------------- token level (for engines)
def no_repeat_ngram_bans(generated: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `generated` (the answer so far, not the prompt)."""
    if n <= 0 or len(generated) < n:
        return set()
    prefix = tuple(generated[len(generated) - n + 1 :]) if n > 1 else ()
    bans = set()
    for i in range(len(generated) - n + 1):
        if tuple(generated[i : i + n - 1]) == prefix:
            bans.add(generated[i + n - 1])
    return bans
