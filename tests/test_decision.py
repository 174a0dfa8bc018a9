"""The Decide scoring model: what each weight means, archetypes, monotonicity, plan, export."""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import asdict

import pytest

from core.decision.export import render_markdown
from core.decision.plan import VARIANTS, PipelinePlan, plan_pipelines
from core.decision.questions import OPTIONS, QUESTIONS, QUESTIONS_BY_ID, default_answers, validate_answers
from core.decision.scoring import WEIGHTS_PATH, decide, load_weights, score
from core.errors import StudioError
from core.estimate.formulas import EstimateInputs, estimate

W = load_weights()

# (question, answer, option, sign, meaning). Each row is a claim about one weight in
# core/decision/weights.json; change a weight's sign and its row fails with the meaning.
WEIGHT_MEANINGS = [
    ("knowledge_change", "daily", "rag", +1, "Knowledge that changes daily favours RAG: re-indexing takes minutes, re-training hours."),
    ("knowledge_change", "daily", "finetune", -1, "Daily changes count against fine-tuning: the weights go stale between runs."),
    ("knowledge_change", "rarely", "finetune", +1, "Stable knowledge favours fine-tuning: train once, serve long."),
    ("knowledge_change", "rarely", "rag", -1, "Stable knowledge removes RAG's freshness advantage."),
    ("traceability", "required", "rag", +1, "Required citations favour RAG: retrieved chunks are the citations."),
    ("traceability", "required", "hybrid", +1, "Required citations favour hybrid too: it retrieves and cites."),
    ("traceability", "required", "finetune", -1, "Required citations count against fine-tuning alone: weights cannot cite."),
    ("traceability", "no", "finetune", +1, "No need for citations lets facts live in the weights."),
    ("style_importance", "critical", "finetune", +1, "A critical voice/format favours fine-tuning: it teaches style reliably."),
    ("style_importance", "critical", "hybrid", +1, "A critical voice/format favours hybrid: it carries the fine-tuned style."),
    ("style_importance", "critical", "rag", -1, "A critical voice/format counts against RAG alone: prompts drift."),
    ("style_importance", "low", "finetune", -1, "Little need for a voice removes fine-tuning's main benefit."),
    ("example_count", "none", "finetune", -1, "No curated examples: nothing to fine-tune on."),
    ("example_count", "none", "hybrid", -1, "No curated examples: hybrid's fine-tuned half has nothing to learn from."),
    ("example_count", "over_10k", "finetune", +1, "Over 10k curated examples is ample fine-tuning data."),
    ("example_count", "none", "rag", +1, "With no examples, RAG (which needs none) gains."),
    ("example_quality", "expert", "finetune", +1, "Expert examples make a better fine-tune."),
    ("example_quality", "mixed", "finetune", -1, "Unreviewed examples teach their mistakes."),
    ("doc_volume", "millions", "rag", +1, "Millions of documents can only be served through an index."),
    ("doc_volume", "millions", "finetune", -1, "A model cannot memorise millions of documents."),
    ("doc_format", "scanned", "rag", -1, "Scanned documents need OCR before retrieval works."),
    ("doc_format", "clean", "rag", +1, "Clean digital text indexes well."),
    ("latency", "realtime", "finetune", +1, "Real-time latency favours a model answering without a search and a long prompt."),
    ("latency", "realtime", "rag", -1, "Real-time latency counts against retrieval's extra search and prompt."),
    ("latency", "realtime", "hybrid", -1, "Real-time latency counts against hybrid: it retrieves too."),
    ("compute_budget", "cpu_only", "finetune", -1, "CPU only: training anything but a tiny model is slow."),
    ("compute_budget", "cpu_only", "rag", +1, "CPU only: RAG runs fine on a CPU."),
    ("compute_budget", "large_gpu", "finetune", +1, "A large GPU makes fine-tuning affordable."),
    ("privacy", "air_gapped", "rag", +1, "Strict on-prem rules favour an index you can audit and delete from."),
    ("privacy", "air_gapped", "finetune", -1, "Weights memorise training data and cannot forget one record."),
    ("domain_language", "specialised", "finetune", +1, "Specialised language is learned by fine-tuning on it."),
    ("domain_language", "specialised", "rag", -1, "Specialised jargon weakens general-purpose embeddings."),
    ("verification", "audit", "rag", +1, "An audit trail needs answers tied to source documents."),
    ("verification", "audit", "finetune", -1, "An audit trail counts against uncited answers."),
    ("verification", "reference_answers", "finetune", +1, "Reference answers suit a fine-tuned model's consistent output."),
    ("ml_experience", "none", "finetune", -1, "A team without ML experience struggles to maintain a fine-tune."),
    ("ml_experience", "none", "hybrid", -1, "Hybrid is the most moving parts for a team without ML experience."),
    ("ml_experience", "strong", "hybrid", +1, "An experienced ML team can own the hybrid pipeline."),
]

# For every question and every option: the direction its points must move as the answer steps
# along the question's scale (+1 non-decreasing, -1 non-increasing, 0 no claim).
DIRECTIONS = {
    "knowledge_change": {"rag": +1, "finetune": -1, "hybrid": +1},
    "traceability": {"rag": +1, "finetune": -1, "hybrid": +1},
    "style_importance": {"rag": -1, "finetune": +1, "hybrid": +1},
    "example_count": {"rag": -1, "finetune": +1, "hybrid": +1},
    "example_quality": {"rag": -1, "finetune": +1, "hybrid": +1},
    "doc_volume": {"rag": +1, "finetune": -1, "hybrid": +1},
    "doc_format": {"rag": -1, "finetune": +1, "hybrid": -1},
    "latency": {"rag": -1, "finetune": +1, "hybrid": -1},
    "compute_budget": {"rag": -1, "finetune": +1, "hybrid": +1},
    "privacy": {"rag": +1, "finetune": -1, "hybrid": +1},
    "domain_language": {"rag": -1, "finetune": +1, "hybrid": +1},
    "verification": {"rag": +1, "finetune": 0, "hybrid": +1},  # fine-tune suits reference answers, not audits
    "ml_experience": {"rag": -1, "finetune": +1, "hybrid": +1},
}

RAG_ARCHETYPE = {"knowledge_change": "daily", "traceability": "required", "doc_volume": "thousands",
                 "verification": "source_check"}
FT_ARCHETYPE = {"knowledge_change": "rarely", "traceability": "no", "style_importance": "critical",
                "example_count": "over_10k", "example_quality": "expert", "compute_budget": "large_gpu",
                "domain_language": "specialised", "ml_experience": "strong"}
HYBRID_ARCHETYPE = {**FT_ARCHETYPE, "knowledge_change": "daily", "traceability": "required",
                    "verification": "source_check"}


@pytest.mark.parametrize("qid,answer,option,sign,meaning", WEIGHT_MEANINGS,
                         ids=[f"{q}={a}->{o}" for q, a, o, _, _ in WEIGHT_MEANINGS])
def test_weight_meaning(qid, answer, option, sign, meaning):
    points = W.points(qid, answer)[option]
    assert points * sign > 0, f"{qid}={answer} toward {option} is {points}: expected {'+' if sign > 0 else '-'}. {meaning}"


def test_every_question_has_a_named_weight_and_a_direction():
    named = {q for q, *_ in WEIGHT_MEANINGS}
    assert named == set(QUESTIONS_BY_ID), f"questions without a stated meaning: {set(QUESTIONS_BY_ID) - named}"
    assert set(DIRECTIONS) == set(QUESTIONS_BY_ID)


def test_priors_say_rag_is_the_cheap_start_and_hybrid_the_costly_one():
    assert W.prior["rag"] > W.prior["finetune"] > W.prior["hybrid"]


def test_weights_file_is_one_json_with_every_answer():
    raw = json.loads(WEIGHTS_PATH.read_text())
    for q in QUESTIONS:
        assert set(raw["weights"][q.id]) == set(q.values)


def test_about_a_dozen_questions_with_help_and_valid_defaults():
    assert 10 <= len(QUESTIONS) <= 14
    for q in QUESTIONS:
        assert q.help and q.label and q.widget in ("radio", "slider", "select")
        assert q.default in q.values
        assert all(c.why for c in q.choices)


@pytest.mark.parametrize("qid", list(DIRECTIONS))
def test_monotonicity(qid):
    """Stepping one answer along its scale never moves an option's score against its direction,
    whatever the other answers are (defaults plus 40 random questionnaires)."""
    q = QUESTIONS_BY_ID[qid]
    rng = random.Random(qid)
    contexts = [default_answers()] + [
        {o.id: rng.choice(o.values) for o in QUESTIONS} for _ in range(40)
    ]
    for ctx in contexts:
        series = [score({**ctx, qid: v}) for v in q.values]
        for option, direction in DIRECTIONS[qid].items():
            for before, after in itertools.pairwise(series):
                if direction:
                    assert (after[option] - before[option]) * direction >= 0, (qid, option, ctx)


def test_archetypes():
    assert decide(RAG_ARCHETYPE).recommendation == "rag"
    assert decide(FT_ARCHETYPE).recommendation == "finetune"
    assert decide(HYBRID_ARCHETYPE).recommendation == "hybrid"


def test_scores_are_prior_plus_contributions():
    d = decide(HYBRID_ARCHETYPE)
    for o in OPTIONS:
        assert d.scores[o] == pytest.approx(W.prior[o] + sum(c.points[o] for c in d.contributions))
    assert sum(d.probabilities.values()) == pytest.approx(1)
    assert d.confidence == max(d.probabilities.values())
    assert d.headline.startswith("Recommended: Hybrid (confidence ")


def test_three_plain_reasons_and_hybrid_reasons_cover_both_sides():
    d = decide(HYBRID_ARCHETYPE)
    assert len(d.reasons) == 3
    ids = {r.question_id for r in d.reasons}
    assert ids & {"traceability", "knowledge_change", "verification"}, "a retrieval-side reason"
    assert ids & {"style_importance", "example_count", "domain_language", "example_quality"}, "a fine-tuning-side reason"
    assert all(r.text.endswith(".") and r.text[0].isupper() for r in d.reasons)


def test_sensitivity_names_a_flip_that_really_flips():
    answers = {"knowledge_change": "daily", "traceability": "required", "style_importance": "high",
               "example_count": "1k_10k", "compute_budget": "small_gpu"}
    d = decide(answers)
    s = d.sensitivity
    assert s.flips and s.new_recommendation != d.recommendation
    assert decide({**answers, s.question_id: s.to_value}).recommendation == s.new_recommendation
    assert d.sensitivity_text.startswith(f"If '{QUESTIONS_BY_ID[s.question_id].label}' were '")
    assert "the recommendation would become" in d.sensitivity_text


def test_sensitivity_without_a_flip_names_the_closest_change():
    d = decide(RAG_ARCHETYPE)
    assert d.sensitivity is not None and not d.sensitivity.flips
    assert "No single answer changes the recommendation" in d.sensitivity_text


def test_unknown_id_and_out_of_range_answer_name_the_choices():
    with pytest.raises(StudioError, match="unknown question id 'colour'.*knowledge_change"):
        validate_answers({"colour": "blue"})
    with pytest.raises(StudioError, match="'hourly'.*knowledge_change.*rarely, quarterly"):
        validate_answers({"knowledge_change": "hourly"})


def test_plan_fields_and_types():
    for answers, rec in ((RAG_ARCHETYPE, "rag"), (FT_ARCHETYPE, "finetune"), (HYBRID_ARCHETYPE, "hybrid")):
        plan = plan_pipelines(decide(answers))
        data = asdict(plan)
        assert data["recommendation"] == rec
        assert isinstance(data["chunk_size"], int) and 0 <= data["chunk_overlap"] < data["chunk_size"]
        assert data["lora_preset"] in ("demo", "quality")
        assert isinstance(data["compare_variants"], list) and set(data["compare_variants"]) <= set(VARIANTS)
        assert "base" in data["compare_variants"]
        assert isinstance(data["eval_plan"], list) and all(isinstance(s, str) for s in data["eval_plan"])
    assert plan_pipelines(decide(HYBRID_ARCHETYPE)).compare_variants == list(VARIANTS)
    assert plan_pipelines(decide(HYBRID_ARCHETYPE)).lora_preset == "quality"
    assert plan_pipelines(decide({})).lora_preset == "demo"
    # citations needed -> smaller chunks, so each citation points at one passage
    assert plan_pipelines(decide(RAG_ARCHETYPE)).chunk_size < plan_pipelines(decide(FT_ARCHETYPE)).chunk_size


def test_plan_is_frozen_and_validates():
    plan = plan_pipelines(decide({}))
    with pytest.raises(Exception):
        plan.chunk_size = 1  # type: ignore[misc]
    with pytest.raises(StudioError):
        PipelinePlan("rag", 0.5, 100, 100, "demo").validate()


def test_render_markdown_has_answers_reasons_plan_and_estimate():
    d = decide(HYBRID_ARCHETYPE)
    est = estimate(EstimateInputs(params=135e6, train_tokens=1e5, hardware="cpu", docs=10))
    md = render_markdown(d, plan_pipelines(d), est)
    assert md.startswith("# Recommended: Hybrid")
    for r in d.reasons:
        assert r.text in md
    assert d.sensitivity_text in md
    assert "How often does the knowledge change?" in md and "Daily" in md
    assert "## Pipeline plan" in md and "## Cost and feasibility estimate" in md
    assert "LoRA" in md and "RAG index" in md
