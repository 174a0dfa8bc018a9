"""Decide's questionnaire: the options, the thirteen questions with their answers, and answer checking.

Choices are ordered (a scale), so "one step" has a meaning for the sensitivity line (core.decision.scoring).
Each answer's `why` is the plain-English reason shown when that answer matters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from core.errors import StudioError

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

QUESTION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (  # how the page groups the questions
    ("Knowledge", ("knowledge_change", "traceability", "doc_volume", "doc_format")),
    ("Voice & data", ("style_importance", "example_count", "example_quality", "domain_language")),
    ("Constraints", ("latency", "compute_budget", "privacy", "verification", "ml_experience")),
)


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
