"""Typed access to the session keys more than one page (or view module) reads.

One place names each key and its type, so a page asks `active_kb()` instead of reading
st.session_state["active_kb"] and guessing what another page stored there. Keys only one page uses
(its widgets, its chat history) stay in that page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # core.decision/estimate load with the pages that use them, not with the sidebar
    from core.decision.plan import PipelinePlan
    from core.decision.scoring import Decision
    from core.engines.registry import EngineSpec
    from core.estimate.formulas import Estimate
    from core.models import EmbedderSpec, GeneratorSpec

ACTIVE_KB = "active_kb"
GENERATOR = "generator_spec"
EMBEDDER = "embedder_spec"
ENGINE = "engine_spec"
DECISION = "decision"
APPLIED_PLAN = "decision_plan"
STARTED_EVALUATION = "evaluation_id"
VIEWED_EVALUATION = "report_evaluation_id"


# ---------------------------------------------------------------- the knowledge base the user works on
def active_kb() -> str | None:
    """The knowledge base chosen last on Documents, Ask or a sample build (its name)."""
    return st.session_state.get(ACTIVE_KB)


def set_active_kb(name: str | None) -> None:
    if name is None:
        st.session_state.pop(ACTIVE_KB, None)
    else:
        st.session_state[ACTIVE_KB] = name


# ---------------------------------------------------------------- the sidebar's models and engine
def generator_spec() -> GeneratorSpec:
    from core.models import GeneratorSpec

    return st.session_state.get(GENERATOR) or GeneratorSpec()


def embedder_spec() -> EmbedderSpec:
    from core.models import EmbedderSpec

    return st.session_state.get(EMBEDDER) or EmbedderSpec()


def engine_spec() -> EngineSpec:
    """The sidebar's engine; `auto` until the user picks one."""
    from core.engines.registry import EngineSpec

    return st.session_state.get(ENGINE) or EngineSpec()


def set_sidebar_models(generator: GeneratorSpec, embedder: EmbedderSpec) -> None:
    st.session_state[GENERATOR], st.session_state[EMBEDDER] = generator, embedder


def set_engine_spec(spec: EngineSpec) -> None:
    st.session_state[ENGINE] = spec


# ---------------------------------------------------------------- the Decide page's results
@dataclass(frozen=True)
class DecideResult:
    """The questionnaire's current recommendation and estimate (re-written on every run of Decide): the report uses them."""

    decision: Decision
    estimate: Estimate | None  # None while an estimate input is invalid


@dataclass(frozen=True)
class AppliedPlan:
    """What "Apply to the other pages" saved: the plan Documents, Fine-tune and Compare pre-fill from, and decision.md."""

    plan: PipelinePlan
    markdown: str


def decide_result() -> DecideResult | None:
    return st.session_state.get(DECISION)


def set_decide_result(result: DecideResult) -> None:
    st.session_state[DECISION] = result


def applied() -> AppliedPlan | None:
    return st.session_state.get(APPLIED_PLAN)


def applied_plan() -> PipelinePlan | None:
    """The applied plan, or None until the user presses Apply on Decide."""
    saved = applied()
    return saved.plan if saved else None


def apply_plan(plan: PipelinePlan, markdown: str) -> None:
    st.session_state[APPLIED_PLAN] = AppliedPlan(plan, markdown)


# ---------------------------------------------------------------- Evaluate: the run started here, the one looked at
def started_evaluation() -> str | None:
    """The evaluation started in this session (its progress shows on the run tab)."""
    return st.session_state.get(STARTED_EVALUATION)


def set_started_evaluation(evaluation_id: str) -> None:
    st.session_state[STARTED_EVALUATION] = evaluation_id


def viewed_evaluation() -> str | None:
    """The evaluation the Scoreboard shows: the report tab starts on it."""
    return st.session_state.get(VIEWED_EVALUATION)


def set_viewed_evaluation(evaluation_id: str) -> None:
    st.session_state[VIEWED_EVALUATION] = evaluation_id
