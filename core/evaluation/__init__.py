"""Evaluation (Prove): compare many questions across the variants, then score them.

An evaluation answers every question with every chosen variant (core.variants: base, rag, finetuned, hybrid)
and scores the answers with the pure functions in `core.metrics`. The modules, by stage:

- `questions`: question sets (uploaded files, held-out splits, generated cloze questions, out-of-scope ones),
  the dataset's format check and the new-token cap a taught answer needs;
- `runner`: `EvaluationSettings`, the `VariantRunner` seam and `EngineVariantRunner` (core.compare through the
  generation engines), `run_evaluation` and its background job (core.jobs);
- `scoring`: per-answer rows, retrieval per question, the per-variant scoreboard;
- `store`: the SQLite `evaluations` table and the files under `evaluations/<id>/`;
- `drill`: the update drill (re-index a copy of a knowledge base; the retrain cost of the last recorded run);
- `views`: the scoreboard's columns (one table for the Evaluate page and the report) and table rows;
- `bottom_line`: which variant wins each metric, with 95% intervals, set against Decide's recommendation.

The public names are re-exported here, so `from core.evaluation import X` works for each of them.
"""
from core.evaluation.bottom_line import bottom_line, bottom_line_text, interval95
from core.evaluation.drill import (
    DRILL_SUFFIX,
    drill_copy_name,
    last_run_duration,
    make_drill_copy,
    remove_document_timed,
    remove_drill_copy,
    replace_document,
    retrain_cost,
)
from core.evaluation.questions import (
    OUT_OF_SCOPE_QUESTIONS,
    QuestionItem,
    dataset_style_check,
    fit_format_cap,
    format_token_cap,
    generate_questions,
    list_heldout_sets,
    load_heldout,
    load_questions,
    out_of_scope_items,
    parse_questions,
    row_to_question,
)
from core.evaluation.runner import (
    EngineVariantRunner,
    EvaluationProgress,
    EvaluationSettings,
    VariantRunner,
    describe_machine,
    embedder_for_kb,
    make_engine_runner,
    prepare_questions,
    run_evaluation,
    start_evaluation_job,
)
from core.evaluation.scoring import has_retrieval_reference, retrieval_row, score_answer, summarize
from core.evaluation.store import (
    EvaluationRecord,
    create_evaluation,
    get_evaluation,
    list_evaluations,
    load_results,
    load_retrieval,
    load_summary,
)
from core.evaluation.views import SCOREBOARD_COLUMNS, ScoreColumn, question_rows, scoreboard_rows
from core.jobs import get_job
from core.variants import USES_ADAPTER, USES_CONTEXT, VARIANT_LABELS, VARIANTS, Answer
