"""Where evaluations are kept: the SQLite `evaluations` table (id, status, progress, settings, summary) and
`evaluations/<id>/`: config.json, questions.json, retrieval.json, results.jsonl (one line per question x variant,
appended as it runs so a cancelled run keeps what it has) and summary.json (atomic)."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from core.errors import StudioError
from core.evaluation.questions import QuestionItem
from core.evaluation.scoring import json_safe, nulls_to_nan, summarize
from core.jobs import utc_now
from core.settings import Workspace
from core.storage import atomic_write_json, connect, ensure_schema, read_json, read_jsonl, transaction

if TYPE_CHECKING:
    from core.evaluation.runner import EvaluationSettings


SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    kb TEXT,
    adapter TEXT,
    variants TEXT NOT NULL,
    question_source TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    settings TEXT NOT NULL,
    summary TEXT
);
"""


def _open(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


@dataclass(frozen=True)
class EvaluationRecord:
    id: str
    created_at: str
    finished_at: str | None
    status: str  # running | done | cancelled | failed
    kb: str | None
    adapter: str | None
    variants: list[str]
    question_source: str
    total: int
    done: int
    error: str | None
    settings: dict
    summary: dict | None

    @property
    def folder_name(self) -> str:
        return self.id


def _record(row) -> EvaluationRecord:
    data = dict(row)
    data["variants"] = json.loads(data["variants"])
    data["settings"] = json.loads(data["settings"])
    data["summary"] = json.loads(data["summary"]) if data["summary"] else None
    return EvaluationRecord(**data)


def list_evaluations(workspace: Workspace) -> list[EvaluationRecord]:
    with _open(workspace) as conn:
        return [_record(row) for row in conn.execute("SELECT * FROM evaluations ORDER BY created_at DESC, id DESC")]


def get_evaluation(workspace: Workspace, evaluation_id: str) -> EvaluationRecord:
    with _open(workspace) as conn:
        row = conn.execute("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    if row is None:
        raise StudioError(f"No evaluation {evaluation_id!r}; list them with the Evaluate page or `python -m core evaluate --help`.")
    return _record(row)


def load_results(workspace: Workspace, evaluation_id: str) -> list[dict]:
    return read_jsonl(workspace.evaluations / evaluation_id / "results.jsonl")  # a line cut short by a crash is skipped


def load_retrieval(workspace: Workspace, evaluation_id: str) -> list[dict]:
    return read_json(workspace.evaluations / evaluation_id / "retrieval.json", []) or []


def update_evaluation(workspace: Workspace, evaluation_id: str, **fields: Any) -> None:
    assignments = ", ".join(f"{key} = ?" for key in fields)
    with _open(workspace) as conn, transaction(conn):
        conn.execute(f"UPDATE evaluations SET {assignments} WHERE id = ?", (*fields.values(), evaluation_id))


def create_evaluation(workspace: Workspace, kb: str | None, adapter: str | None, questions: Sequence[QuestionItem],
                      settings: "EvaluationSettings", question_source: str, extra: dict | None = None) -> str:
    evaluation_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = workspace.evaluations / evaluation_id
    folder.mkdir(parents=True, exist_ok=True)
    config = {"id": evaluation_id, "kb": kb, "adapter": adapter, "question_source": question_source,
              "settings": {**asdict(settings), "variants": list(settings.variants)}, "questions": len(questions), **(extra or {})}
    atomic_write_json(folder / "config.json", config)
    atomic_write_json(folder / "questions.json", [q.to_dict() for q in questions])
    with _open(workspace) as conn, transaction(conn):
        conn.execute(
            """INSERT INTO evaluations (id, created_at, status, kb, adapter, variants, question_source, total, done, settings)
               VALUES (?,?,?,?,?,?,?,?,0,?)""",
            (evaluation_id, utc_now(), "running", kb, adapter, json.dumps(list(settings.variants)), question_source,
             len(questions) * len(settings.variants), json.dumps(config["settings"] | (extra or {}), default=str)),
        )
    return evaluation_id


def load_summary(workspace: Workspace, evaluation_id: str) -> dict:
    record = get_evaluation(workspace, evaluation_id)
    if record.summary:
        return record.summary
    rows = load_results(workspace, evaluation_id)
    return json_safe(summarize([nulls_to_nan(r) for r in rows], load_retrieval(workspace, evaluation_id), record.variants,
                                int(record.settings.get("k", 5))))
