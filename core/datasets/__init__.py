"""Tune: training rows. One module per seam; this package re-exports the public names (`from core import datasets as D`).

- `rows`: one row (instruction/input/output + source, the prompt/completion view), sentences, style rules and `follows_style`.
- `build`: rows from a knowledge base's chunks (qa, summary, style), boilerplate skipped, best first.
- `files`: JSONL/CSV uploads validated line by line, and downloads in either format.
- `store`: split, save, list, load, delete under `workspace.datasets/<id>/` and the `datasets` table.
"""
from core.datasets.build import (  # noqa: F401
    BOILERPLATE_REASONS, MIN_PROSE_SHARE, QA_PROMPT, DatasetBuildSettings, boilerplate_reason, build_from_knowledge_base, build_rows,
    extractive_qa, interleave_documents, prose_of, row_quality, skipped_summary,
)
from core.datasets.files import ValidationReport, export_rows, parse_upload, rows_to_jsonl, validate_rows  # noqa: F401
from core.datasets.rows import (  # noqa: F401
    BULLET_WORDS, DEFAULT_STYLE, FORMATS, KINDS, STYLE_INSTRUCTIONS, STYLE_RULES, clip_chars, detect_style_rule, follows_style,
    make_row, render_style, risk_sentence, row_messages, short_form, split_sentences, topic_of,
)
from core.datasets.store import (  # noqa: F401
    DATASET_ID_PATTERN, SCHEMA, DatasetInfo, check_dataset_id, dataset_content_hash, dataset_meta, delete_dataset, get_dataset,
    list_datasets, load_dataset_rows, save_dataset, split_rows, validate_dataset_id,
)
