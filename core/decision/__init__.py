"""Decide: the questionnaire (`questions`), a transparent scoring model (`scoring`, weights in `weights.json`), the
plan it hands to later pages (`plan`), and the decision as data and Markdown (`export`).

The public names are re-exported here (`from core.decision import decide`) for scripts and old callers.
"""
from core.decision.export import decision_to_dict, render_markdown  # noqa: F401
from core.decision.plan import (  # noqa: F401
    CHUNK_OVERLAP_FRACTION,
    CHUNK_SIZE_CITED,
    CHUNK_SIZE_DEFAULT,
    VARIANTS,
    PipelinePlan,
    estimate_defaults,
    hardware_note,
    plan_pipelines,
    suggested_docs,
    suggested_hardware,
)
from core.decision.questions import (  # noqa: F401
    OPTION_LABELS,
    OPTIONS,
    QUESTION_GROUPS,
    QUESTIONS,
    QUESTIONS_BY_ID,
    Choice,
    Question,
    default_answers,
    validate_answers,
)
from core.decision.scoring import (  # noqa: F401
    WEIGHTS_PATH,
    Contribution,
    Decision,
    Reason,
    Sensitivity,
    Weights,
    contribution_rows,
    decide,
    load_weights,
    score,
)
