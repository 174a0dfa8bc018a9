"""Decide's scoring model: weights, scores, the recommendation, its reasons and the answer it hinges on.

The model is deliberately simple so that an executive can audit it:

    score(option) = prior[option] + sum over questions of weights[question][answer][option]

Every weight lives in one data file, `core/decision/weights.json`; `tests/test_decision.py`
states what each weight means. The recommendation is the highest score (ties go to the
simpler option: RAG, then fine-tune, then hybrid); confidence is the softmax of the scores
at the file's temperature. Reasons are the answers that most separate the winner from the
runner-up; the sensitivity line is the smallest single change of answer that flips the winner.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from core.decision.questions import OPTION_LABELS, OPTIONS, QUESTIONS, QUESTIONS_BY_ID, validate_answers
from core.errors import StudioError

log = logging.getLogger(__name__)

WEIGHTS_PATH = Path(__file__).with_name("weights.json")


@dataclass(frozen=True)
class Weights:
    prior: Mapping[str, float]
    temperature: float
    table: Mapping[str, Mapping[str, Mapping[str, float]]]  # question -> answer -> option -> points

    def points(self, question_id: str, answer: str) -> dict[str, float]:
        return dict(self.table[question_id][answer])


def load_weights(path: str | Path | None = None) -> Weights:
    """Read and check the weights file: every question, every answer, every option."""
    return _load_weights(str(path or WEIGHTS_PATH))


@lru_cache(maxsize=4)
def _load_weights(path: str) -> Weights:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StudioError(f"cannot read the decision weights {path}: {error}") from error
    table = raw.get("weights", {})
    for q in QUESTIONS:
        for value in q.values:
            cell = table.get(q.id, {}).get(value)
            if cell is None or set(cell) != set(OPTIONS):
                raise StudioError(f"{path}: weights for {q.id}={value} must give points for {', '.join(OPTIONS)}")
    extra = set(table) - set(QUESTIONS_BY_ID)
    if extra:
        raise StudioError(f"{path}: weights for unknown questions {sorted(extra)}")
    return Weights(prior=dict(raw["prior"]), temperature=float(raw["confidence_temperature"]), table=table)


@dataclass(frozen=True)
class Contribution:
    question_id: str
    question: str  # short label
    answer: str
    answer_label: str
    points: Mapping[str, float]


@dataclass(frozen=True)
class Reason:
    question_id: str
    text: str
    margin: float  # points this answer put between the winner and the runner-up


@dataclass(frozen=True)
class Sensitivity:
    """The one answer the recommendation hinges on. If no single change flips it (`flips` is
    False), the change that brings the runner-up closest, and the lead that would remain."""

    question_id: str
    question: str
    from_label: str
    to_value: str
    to_label: str
    new_recommendation: str
    flips: bool = True
    lead_after: float = 0.0

    @property
    def text(self) -> str:
        if self.flips:
            return (f"If '{self.question}' were '{self.to_label}' (instead of '{self.from_label}'), "
                    f"the recommendation would become {OPTION_LABELS[self.new_recommendation]}.")
        return (f"No single answer changes the recommendation. Closest: '{self.question}' = "
                f"'{self.to_label}' still leaves {OPTION_LABELS[self.new_recommendation]} "
                f"ahead by {self.lead_after:.1f} points.")


@dataclass(frozen=True)
class Decision:
    answers: Mapping[str, str]
    scores: Mapping[str, float]
    probabilities: Mapping[str, float]
    recommendation: str
    runner_up: str
    contributions: tuple[Contribution, ...]
    reasons: tuple[Reason, ...]
    sensitivity: Sensitivity | None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.recommendation]

    @property
    def label(self) -> str:
        return OPTION_LABELS[self.recommendation]

    @property
    def headline(self) -> str:
        return f"Recommended: {self.label} (confidence {self.confidence:.0%})"

    @property
    def sensitivity_text(self) -> str:
        if self.sensitivity is None:
            return "No single change of answer would change the recommendation."
        return self.sensitivity.text


def score(answers: Mapping[str, str], weights: Weights | None = None) -> dict[str, float]:
    """prior + the sum of each answer's points, per option."""
    weights = weights or load_weights()
    answers = validate_answers(answers)
    totals = {o: float(weights.prior[o]) for o in OPTIONS}
    for q in QUESTIONS:
        for o, p in weights.points(q.id, answers[q.id]).items():
            totals[o] += p
    return totals


def _winner(scores: Mapping[str, float]) -> str:
    return max(OPTIONS, key=lambda o: (scores[o], -OPTIONS.index(o)))


def _softmax(scores: Mapping[str, float], temperature: float) -> dict[str, float]:
    top = max(scores.values())
    exp = {o: math.exp((scores[o] - top) / temperature) for o in OPTIONS}
    total = sum(exp.values())
    return {o: exp[o] / total for o in OPTIONS}


def decide(answers: Mapping[str, Any], weights: Weights | None = None) -> Decision:
    """Score every option, pick one, explain it, and find the answer it hinges on."""
    weights = weights or load_weights()
    answers = validate_answers(answers)
    scores = score(answers, weights)
    winner = _winner(scores)
    runner_up = max((o for o in OPTIONS if o != winner), key=lambda o: (scores[o], -OPTIONS.index(o)))
    contributions = tuple(
        Contribution(q.id, q.short, answers[q.id], q.choice(answers[q.id]).label, weights.points(q.id, answers[q.id]))
        for q in QUESTIONS
    )
    reasons = _reasons(contributions, winner, runner_up)
    decision = Decision(answers=answers, scores=scores, probabilities=_softmax(scores, weights.temperature),
                        recommendation=winner, runner_up=runner_up, contributions=contributions,
                        reasons=reasons, sensitivity=_sensitivity(answers, winner, weights))
    log.info("decide: %s scores=%s", winner, scores)
    return decision


def _reasons(contributions: tuple[Contribution, ...], winner: str, runner_up: str) -> tuple[Reason, ...]:
    """The three answers that most separate the winner from its rivals. For hybrid, alternate the
    answers that beat RAG (the fine-tuning side) and those that beat fine-tune (the retrieval side)."""
    rivals = [o for o in OPTIONS if o != winner] if winner == "hybrid" else [runner_up]
    ranked_lists = [
        [(c.points[winner] - c.points[r], c) for c in sorted(contributions, key=lambda c: -(c.points[winner] - c.points[r]))]
        for r in rivals
    ]
    chosen: list[Reason] = []
    seen: set[str] = set()
    for rank in range(len(contributions)):
        for ranked in ranked_lists:
            margin, c = ranked[rank]
            if margin > 0 and c.question_id not in seen and len(chosen) < 3:
                seen.add(c.question_id)
                text = _sentence(QUESTIONS_BY_ID[c.question_id].choice(c.answer).why)
                chosen.append(Reason(c.question_id, text, round(margin, 2)))
    return tuple(chosen)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _sensitivity(answers: dict[str, str], winner: str, weights: Weights) -> Sensitivity | None:
    """The single answer change that flips the winner: fewest steps along its scale, then the
    largest lead for the new winner, then questionnaire order. If none flips, the change that
    leaves the winner the smallest lead."""
    best: tuple[tuple[float, ...], Sensitivity] | None = None
    closest: tuple[float, Sensitivity] | None = None
    for order, q in enumerate(QUESTIONS):
        here = q.index(answers[q.id])
        for i, c in enumerate(q.choices):
            if i == here:
                continue
            scores = score({**answers, q.id: c.value}, weights)
            new = _winner(scores)
            lead = scores[new] - max(s for o, s in scores.items() if o != new)
            found = Sensitivity(q.id, q.label if new != winner else q.short, q.choice(answers[q.id]).label, c.value, c.label, new,
                                flips=new != winner, lead_after=round(lead, 2))
            if new == winner:
                if closest is None or lead < closest[0]:
                    closest = (lead, found)
                continue
            key = (abs(i - here), -lead, order)
            if best is None or key < best[0]:
                best = (key, found)
    if best:
        return best[1]
    return closest[1] if closest else None


def contribution_rows(decision: Decision) -> list[dict[str, Any]]:
    """Long-format rows (question, option, points) for a chart, starting with the prior."""
    weights = load_weights()
    rows = [{"question": "Starting point", "answer": "prior", "option": OPTION_LABELS[o], "points": weights.prior[o]}
            for o in OPTIONS]
    for c in decision.contributions:
        rows += [{"question": c.question, "answer": c.answer_label, "option": OPTION_LABELS[o], "points": c.points[o]}
                 for o in OPTIONS]
    return rows
