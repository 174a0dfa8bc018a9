"""A decision as data (`decision_to_dict`: the CLI's --json, the evaluation report) and as Markdown (decision.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.decision.plan import PipelinePlan, hardware_note
from core.decision.questions import OPTION_LABELS, OPTIONS, QUESTIONS_BY_ID
from core.decision.scoring import Decision
from core.estimate.summary import summary_lines

if TYPE_CHECKING:  # pragma: no cover
    from core.estimate.formulas import Estimate


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
        lines += ["", "## Cost and feasibility estimate", "", _md(hardware_note(decision.answers, estimate.hardware.key)), ""]
        lines += [f"- {_md(line)}" for line in summary_lines(estimate)]
    return "\n".join(lines) + "\n"
