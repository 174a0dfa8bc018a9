"""Decide: the questionnaire, a transparent scoring model, and the plan it hands to later pages.

The model is deliberately simple so that an executive can audit it:

    score(option) = prior[option] + sum over questions of weights[question][answer][option]

Every weight lives in one data file, `core/decision_weights.json`; `tests/test_decision.py`
states what each weight means. The recommendation is the highest score (ties go to the
simpler option: RAG, then fine-tune, then hybrid); confidence is the softmax of the scores
at the file's temperature. Reasons are the answers that most separate the winner from the
runner-up; the sensitivity line is the smallest single change of answer that flips the winner.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from core.errors import StudioError
from core.variants import VARIANT_OF_OPTION, VARIANTS  # the Compare page's columns

if TYPE_CHECKING:  # pragma: no cover
    from core.estimate import Estimate

log = logging.getLogger(__name__)

WEIGHTS_PATH = Path(__file__).with_name("decision_weights.json")

OPTIONS: tuple[str, ...] = ("rag", "finetune", "hybrid")  # order = tie-break (simplest first)
OPTION_LABELS = {"rag": "RAG", "finetune": "Fine-tune", "hybrid": "Hybrid"}


@dataclass(frozen=True)
class Choice:
    """One possible answer. `why` is the plain-English reason used when this answer matters."""

    value: str
    label: str
    why: str


@dataclass(frozen=True)
class Question:
    """One questionnaire item. Choices are ordered (a scale), so 'one step' has a meaning."""

    id: str
    label: str
    short: str  # chart axis label
    help: str
    widget: str  # "radio" | "slider" | "select"
    choices: tuple[Choice, ...]
    default: str

    @property
    def values(self) -> list[str]:
        return [c.value for c in self.choices]

    def choice(self, value: str) -> Choice:
        for c in self.choices:
            if c.value == value:
                return c
        raise StudioError(
            f"answer {value!r} is not valid for question {self.id!r} ({self.label}); "
            f"valid answers: {', '.join(self.values)}"
        )

    def index(self, value: str) -> int:
        return self.values.index(self.choice(value).value)


def _q(id: str, label: str, short: str, help: str, widget: str, default: str, *choices: tuple[str, str, str]) -> Question:
    return Question(id, label, short, help, widget, tuple(Choice(*c) for c in choices), default)


QUESTIONS: tuple[Question, ...] = (
    _q("knowledge_change", "How often does the knowledge change?", "Knowledge changes",
       "New prices, policies, products, tickets. RAG picks up a new document in minutes; a fine-tune must be re-trained.",
       "slider", "monthly",
       ("rarely", "Rarely (yearly or less)", "the knowledge rarely changes, so it can be trained into the model once"),
       ("quarterly", "Quarterly", "the knowledge changes only quarterly, so re-training a few times a year is affordable"),
       ("monthly", "Monthly", "the knowledge changes monthly; re-indexing documents is cheaper than re-training"),
       ("weekly", "Weekly", "the knowledge changes weekly: re-indexing takes minutes, re-training every week does not scale"),
       ("daily", "Daily", "the knowledge changes daily: only retrieval keeps answers current without re-training")),
    _q("traceability", "Must answers be traceable to a source?", "Traceability",
       "Citations let a reader check an answer against the document it came from.",
       "radio", "nice",
       ("no", "Not needed", "answers need no citations, so facts can live in the model's weights"),
       ("nice", "Nice to have", "citations are welcome, and retrieval provides them for free"),
       ("required", "Required (audit, compliance)", "every answer must cite its source, which only retrieval provides")),
    _q("style_importance", "How much does a consistent voice, format or vocabulary matter?", "Voice & format",
       "A house style, a fixed report layout, a brand voice, or the exact terms of your field.",
       "slider", "medium",
       ("low", "Low", "a consistent voice hardly matters, so there is little to gain from training one"),
       ("medium", "Medium", "a consistent voice matters somewhat"),
       ("high", "High", "a consistent voice and format matter a lot, which fine-tuning teaches reliably"),
       ("critical", "Critical", "a strict voice and format are critical; prompts alone drift, fine-tuning holds it")),
    _q("example_count", "How many curated question-and-answer examples exist?", "Curated examples",
       "Examples of the answers you want: ideal replies, reviewed tickets, approved reports.",
       "slider", "under_100",
       ("none", "None", "there are no curated examples to fine-tune on"),
       ("under_100", "Under 100", "fewer than 100 curated examples is too few for a dependable fine-tune"),
       ("100_1k", "100 - 1,000", "100-1,000 curated examples is enough for a LoRA fine-tune"),
       ("1k_10k", "1,000 - 10,000", "1,000-10,000 curated examples is a strong basis for fine-tuning"),
       ("over_10k", "Over 10,000", "over 10,000 curated examples is an excellent basis for fine-tuning")),
    _q("example_quality", "What is the quality of those examples?", "Example quality",
       "Fine-tuning copies what it sees, mistakes included.",
       "radio", "mixed",
       ("mixed", "Mixed / unreviewed", "unreviewed examples would teach the model their mistakes"),
       ("reviewed", "Reviewed", "the examples are reviewed, so they are safe to train on"),
       ("expert", "Expert-written (gold)", "expert-written examples are the best material for fine-tuning")),
    _q("doc_volume", "How many documents hold the knowledge?", "Document volume",
       "Manuals, policies, contracts, wiki pages, tickets.",
       "slider", "hundreds",
       ("few", "Fewer than 50", "with fewer than 50 documents the knowledge could fit in training data"),
       ("hundreds", "Hundreds", "hundreds of documents are easy to index and search"),
       ("thousands", "Thousands", "thousands of documents are far more than a model can memorise reliably; search finds them"),
       ("millions", "Millions", "millions of documents can only be served through a search index")),
    _q("doc_format", "In what format are the documents?", "Document format",
       "Scanned pages need OCR before retrieval can read them.",
       "select", "mixed",
       ("clean", "Digital text (PDF, Word, HTML)", "the documents are clean digital text, which indexes well"),
       ("mixed", "Mixed (tables, slides, some scans)", "the documents are a mix of formats"),
       ("scanned", "Mostly scanned images", "mostly scanned documents need OCR before retrieval can use them")),
    _q("latency", "How much does response latency matter?", "Latency",
       "Retrieval adds a search plus a longer prompt to every answer.",
       "radio", "interactive",
       ("relaxed", "Relaxed (seconds are fine)", "a few seconds per answer is acceptable, so retrieval's extra time is free"),
       ("interactive", "Interactive (about 2 s)", "answers should arrive in about two seconds"),
       ("realtime", "Real-time (under 0.5 s)", "real-time answers leave no time for a search and a long prompt")),
    _q("compute_budget", "What GPU and compute budget is available?", "Compute budget",
       "Training needs a GPU for anything above a small model; RAG runs on a CPU.",
       "select", "cpu_only",
       ("cpu_only", "CPU only", "only CPUs are available, where retrieval runs well and training is slow"),
       ("small_gpu", "One small GPU (T4 / L4, 16-24 GB)", "one small GPU can QLoRA-train a 7B model"),
       ("large_gpu", "One large GPU (A100 / H100)", "a large GPU makes fine-tuning fast and affordable"),
       ("multi_gpu", "Several GPUs / a cluster", "a GPU cluster makes fine-tuning fast and affordable")),
    _q("privacy", "What are the privacy and on-premises needs?", "Privacy",
       "Data in an index can be access-controlled and deleted; data trained into weights cannot be removed.",
       "radio", "no_third_party",
       ("cloud_ok", "Cloud services are fine", "there are no special privacy constraints"),
       ("no_third_party", "No third-party APIs", "data must stay with you; retrieval keeps it in an index you control"),
       ("air_gapped", "On-premises / air-gapped", "strict on-premises rules favour an index you can audit and delete from over weights that memorise data")),
    _q("domain_language", "How specialised is the domain language?", "Domain language",
       "Legal, medical, engineering or in-house jargon that a general model misreads.",
       "radio", "some_jargon",
       ("general", "General business language", "general language needs no extra training"),
       ("some_jargon", "Some jargon", "some jargon is present"),
       ("specialised", "Highly specialised", "highly specialised language is learned best by fine-tuning on it")),
    _q("verification", "How will answers be checked?", "Answer checking",
       "How you will know the system is right, before and after launch.",
       "select", "spot_checks",
       ("spot_checks", "Informal spot checks", "answers will be spot-checked informally"),
       ("reference_answers", "Against reference answers", "checking against reference answers suits a fine-tuned model's consistent output"),
       ("source_check", "Reviewers verify against sources", "reviewers verify answers against their sources, which needs citations"),
       ("audit", "Regulated audit trail", "a regulated audit trail needs every answer tied to a source document")),
    _q("ml_experience", "What is the team's ML experience?", "Team ML experience",
       "Fine-tuning needs someone who can prepare data, train, evaluate and re-train.",
       "radio", "some",
       ("none", "None (software team)", "a team without ML experience can run a RAG pipeline but will struggle to maintain a fine-tune"),
       ("some", "Some (notebooks, APIs)", "the team has some ML experience"),
       ("strong", "Strong (models in production)", "an experienced ML team can own a fine-tuning pipeline")),
)
QUESTIONS_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


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


def default_answers() -> dict[str, str]:
    return {q.id: q.default for q in QUESTIONS}


def validate_answers(raw: Mapping[str, Any]) -> dict[str, str]:
    """Defaults for missing ids; StudioError naming an unknown id or an out-of-range answer."""
    answers = default_answers()
    for key, value in raw.items():
        if key not in QUESTIONS_BY_ID:
            raise StudioError(f"unknown question id {key!r}; valid ids: {', '.join(QUESTIONS_BY_ID)}")
        answers[key] = QUESTIONS_BY_ID[key].choice(str(value)).value
    return answers


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


QUESTION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (  # how the page groups the questions
    ("Knowledge", ("knowledge_change", "traceability", "doc_volume", "doc_format")),
    ("Voice & data", ("style_importance", "example_count", "example_quality", "domain_language")),
    ("Constraints", ("latency", "compute_budget", "privacy", "verification", "ml_experience")),
)
_HARDWARE_FOR_BUDGET = {"cpu_only": "cpu", "small_gpu": "t4", "large_gpu": "a100-80gb", "multi_gpu": "h100"}
_DOCS_FOR_VOLUME = {"few": 30, "hundreds": 300, "thousands": 3000, "millions": 1_000_000}


def suggested_hardware(answers: Mapping[str, str]) -> str:
    """A hardware key for core.estimate that matches the compute-budget answer."""
    return _HARDWARE_FOR_BUDGET[validate_answers(answers)["compute_budget"]]


def suggested_docs(answers: Mapping[str, str]) -> int:
    """A document count that matches the document-volume answer."""
    return _DOCS_FOR_VOLUME[validate_answers(answers)["doc_volume"]]


def estimate_defaults(answers: Mapping[str, str]) -> dict[str, Any]:
    """The cost estimate's inputs that follow from the answers: hardware (compute budget), a model and training set
    that hardware handles (the embedded 135M model and a demo-sized set on a CPU), and the document count (volume)."""
    hardware = suggested_hardware(answers)
    on_cpu = hardware == "cpu"
    return {"hardware": hardware, "model": "smollm2-135m" if on_cpu else "phi-3-mini",
            "train_tokens": 200_000 if on_cpu else 2_000_000, "docs": suggested_docs(answers)}


def hardware_note(answers: Mapping[str, str], hardware_key: str) -> str:
    """Where the estimate's hardware comes from, so the page and decision.md say the same thing."""
    from core.estimate import HARDWARE  # local: estimate imports nothing from here

    answer = QUESTIONS_BY_ID["compute_budget"].choice(validate_answers(answers)["compute_budget"]).label
    suggested = suggested_hardware(answers)
    if hardware_key == suggested:
        return f"Hardware {HARDWARE[hardware_key].label}, from the compute answer “{answer}”."
    return (f"Hardware {HARDWARE[hardware_key].label}, chosen by hand; the compute answer “{answer}” "
            f"suggests {HARDWARE[suggested].label}.")


def contribution_rows(decision: Decision) -> list[dict[str, Any]]:
    """Long-format rows (question, option, points) for a chart, starting with the prior."""
    weights = load_weights()
    rows = [{"question": "Starting point", "answer": "prior", "option": OPTION_LABELS[o], "points": weights.prior[o]}
            for o in OPTIONS]
    for c in decision.contributions:
        rows += [{"question": c.question, "answer": c.answer_label, "option": OPTION_LABELS[o], "points": c.points[o]}
                 for o in OPTIONS]
    return rows


# ---------------------------------------------------------------- the plan for later pages

CHUNK_SIZE_DEFAULT = 1000  # chars, about 250 tokens: fits MiniLM's 256-token window (DESIGN: ~220-token chunks)
CHUNK_SIZE_CITED = 600  # smaller chunks make each citation point at one passage, not a page
CHUNK_OVERLAP_FRACTION = 0.15  # 10-20% overlap is the usual range; keeps a sentence split across chunks findable


@dataclass(frozen=True)
class PipelinePlan:
    """What Apply writes to st.session_state["decision_plan"] (as dataclasses.asdict)."""

    recommendation: str  # "rag" | "finetune" | "hybrid"
    confidence: float
    chunk_size: int  # chars
    chunk_overlap: int  # chars
    lora_preset: str  # "demo" | "quality"
    compare_variants: list[str] = field(default_factory=list)  # from VARIANTS, in column order
    eval_plan: list[str] = field(default_factory=list)  # plain-English steps
    reasons: list[str] = field(default_factory=list)

    def validate(self) -> "PipelinePlan":
        if self.recommendation not in OPTIONS:
            raise StudioError(f"recommendation must be one of {', '.join(OPTIONS)}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise StudioError("chunk_overlap must be at least 0 and smaller than chunk_size")
        if self.lora_preset not in ("demo", "quality"):
            raise StudioError("lora_preset must be 'demo' or 'quality'")
        if not set(self.compare_variants) <= set(VARIANTS):
            raise StudioError(f"compare_variants must come from {', '.join(VARIANTS)}")
        return self


def plan_pipelines(decision: Decision) -> PipelinePlan:
    """Turn a decision into settings the Documents, Fine-tune, Compare and Evaluate pages read."""
    a = decision.answers
    cited = a["traceability"] == "required" or a["verification"] in ("source_check", "audit")
    chunk_size = CHUNK_SIZE_CITED if cited else CHUNK_SIZE_DEFAULT
    chunk_overlap = int(round(chunk_size * CHUNK_OVERLAP_FRACTION))
    big_gpu = a["compute_budget"] in ("large_gpu", "multi_gpu")
    enough_examples = a["example_count"] in ("1k_10k", "over_10k")
    lora_preset = "quality" if big_gpu or (a["compute_budget"] == "small_gpu" and enough_examples) else "demo"

    if decision.recommendation == "hybrid":
        variants = list(VARIANTS)
    else:
        wanted = {"base", VARIANT_OF_OPTION[decision.recommendation], VARIANT_OF_OPTION[decision.runner_up]}
        variants = [v for v in VARIANTS if v in wanted]

    steps = ["Hold out 10-20% of the questions (at least 30) before building anything; never train on them."]
    if decision.recommendation in ("rag", "hybrid") or cited:
        steps.append("Check retrieval: for each held-out question, is the right passage in the top 4 chunks (hit rate, MRR)?")
        steps.append("Check faithfulness: every claim in an answer must appear in a cited chunk.")
    if decision.recommendation in ("finetune", "hybrid"):
        steps.append("Compare fine-tuned against base on the held-out questions: format and vocabulary match, "
                     "and watch that facts the base model knew are not lost.")
    if a["verification"] == "reference_answers":
        steps.append("Score answers against the reference answers (token F1 / ROUGE-L), alongside any judge model.")
    if a["verification"] in ("source_check", "audit"):
        steps.append("Have a reviewer verify 30 answers against their sources; record the verdicts as the audit trail.")
    else:
        steps.append("Have a domain expert blind-rate 30 answers from each variant on a 1-5 scale.")
    if a["latency"] != "relaxed":
        budget = "0.5 s" if a["latency"] == "realtime" else "2 s"
        steps.append(f"Measure p95 latency per variant against the {budget} budget.")
    if a["knowledge_change"] in ("weekly", "daily"):
        steps.append("Add a new document, re-index, and check the answer changes (freshness test).")

    return PipelinePlan(
        recommendation=decision.recommendation,
        confidence=round(decision.confidence, 4),
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        lora_preset=lora_preset,
        compare_variants=variants,
        eval_plan=steps,
        reasons=[r.text for r in decision.reasons],
    ).validate()


# ---------------------------------------------------------------- export

def _md(text: str) -> str:
    """Escape Markdown table pipes in our own and user-facing labels."""
    return str(text).replace("|", "\\|")


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    return {
        "recommendation": decision.recommendation,
        "label": decision.label,
        "confidence": round(decision.confidence, 4),
        "scores": {o: round(s, 2) for o, s in decision.scores.items()},
        "reasons": [r.text for r in decision.reasons],
        "sensitivity": decision.sensitivity_text,
        "answers": dict(decision.answers),
    }


def render_markdown(decision: Decision, plan: PipelinePlan | None = None, estimate: "Estimate | None" = None) -> str:
    """The decision as Markdown: headline, scores, reasons, sensitivity, answers, plan, estimate."""
    lines = [f"# {decision.headline}", "", "## Scores", "", "| Option | Score | Probability |", "|---|---:|---:|"]
    for o in OPTIONS:
        lines.append(f"| {OPTION_LABELS[o]} | {decision.scores[o]:+.1f} | {decision.probabilities[o]:.0%} |")
    lines += ["", "## Why", ""]
    lines += [f"{i}. {r.text}" for i, r in enumerate(decision.reasons, 1)] or ["No answer favours one option strongly."]
    lines += ["", f"**Sensitivity:** {decision.sensitivity_text}", "", "## Answers", "",
              "| Question | Answer | RAG | Fine-tune | Hybrid |", "|---|---|---:|---:|---:|"]
    for c in decision.contributions:
        q = QUESTIONS_BY_ID[c.question_id]
        lines.append(f"| {_md(q.label)} | {_md(c.answer_label)} | "
                     + " | ".join(f"{c.points[o]:+.1f}" for o in OPTIONS) + " |")
    if plan is not None:
        lines += ["", "## Pipeline plan", "",
                  f"- Chunks: {plan.chunk_size} characters with {plan.chunk_overlap} overlap",
                  f"- LoRA preset: {plan.lora_preset}",
                  f"- Compare: {', '.join(plan.compare_variants)}",
                  "", "### Evaluation plan", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(plan.eval_plan, 1)]
    if estimate is not None:
        from core.estimate import summary_lines  # local: estimate imports nothing from here

        lines += ["", "## Cost and feasibility estimate", "", _md(hardware_note(decision.answers, estimate.hardware.key)), ""]
        lines += [f"- {_md(line)}" for line in summary_lines(estimate)]
    return "\n".join(lines) + "\n"
