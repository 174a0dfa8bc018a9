"""What a decision hands to the other pages: the pipeline plan (chunks, LoRA preset, Compare columns, evaluation
steps) and the cost estimate's inputs that follow from the answers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from core.decision.questions import OPTIONS, QUESTIONS_BY_ID, validate_answers
from core.decision.scoring import Decision
from core.errors import StudioError
from core.variants import VARIANT_OF_OPTION, VARIANTS  # the Compare page's columns
from core.estimate.specs import HARDWARE


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


# ---------------------------------------------------------------- the answers -> the cost estimate's inputs

_HARDWARE_FOR_BUDGET = {"cpu_only": "cpu", "small_gpu": "t4", "large_gpu": "a100-80gb", "multi_gpu": "h100"}
_DOCS_FOR_VOLUME = {"few": 30, "hundreds": 300, "thousands": 3000, "millions": 1_000_000}


def suggested_hardware(answers: Mapping[str, str]) -> str:
    """A hardware key for core.estimate.specs.HARDWARE that matches the compute-budget answer."""
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
    answer = QUESTIONS_BY_ID["compute_budget"].choice(validate_answers(answers)["compute_budget"]).label
    suggested = suggested_hardware(answers)
    if hardware_key == suggested:
        return f"Hardware {HARDWARE[hardware_key].label}, from the compute answer “{answer}”."
    return (f"Hardware {HARDWARE[hardware_key].label}, chosen by hand; the compute answer “{answer}” "
            f"suggests {HARDWARE[suggested].label}.")
