"""The sample documents shipped in samples/: a knowledge base and Compare demo questions in one call."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.compare import save_demo_questions
from core.errors import StudioError
from core.embedding import Embedder
from core.ingest import IngestProgress, IngestResult, ingest_files
from core.settings import Workspace

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
SAMPLE_KB = "samples"


@dataclass(frozen=True)
class SampleSettings:
    """How the sample knowledge base is built."""

    kb_name: str = field(default=SAMPLE_KB, metadata={"help": "Knowledge base that receives the sample PDFs."})
    questions_per_document: int = field(
        default=2, metadata={"help": "Gold questions per article put in Compare's demo list (each runs every variant)."}
    )

    def validate(self) -> None:
        if not 1 <= self.questions_per_document <= 5:
            raise StudioError("Pick 1 to 5 demo questions per sample document.")


@dataclass(frozen=True)
class SampleBuild:
    kb_name: str
    results: list[IngestResult]
    questions: list[str]

    @property
    def added(self) -> int:
        return sum(r.status == "added" for r in self.results)


def _folder(root: Path | None) -> Path:
    root = root or SAMPLES_DIR
    if not (root / "docs").is_dir() or not (root / "qa_sample.jsonl").is_file():
        raise StudioError(f"The sample documents are missing ({root}). Restore the samples/ folder from the repository.")
    return root


def sample_documents(root: Path | None = None) -> list[Path]:
    return sorted(_folder(root).joinpath("docs").glob("*.pdf"))


def sample_questions(per_document: int = 2, root: Path | None = None) -> list[dict]:
    """The first gold questions of each sample article, in file order (qa_sample.jsonl holds 5 per article)."""
    taken: dict[str, int] = {}
    rows = []
    for line in (_folder(root) / "qa_sample.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if taken.get(row["source_doc"], 0) < per_document:
            taken[row["source_doc"]] = taken.get(row["source_doc"], 0) + 1
            rows.append(row)
    return rows


def build_sample_knowledge_base(
    workspace: Workspace,
    embedder: Embedder,
    settings: SampleSettings = SampleSettings(),
    progress: Callable[[IngestProgress], None] | None = None,
    root: Path | None = None,
) -> SampleBuild:
    """Ingest the sample PDFs (a second click finds them as duplicates) and save their gold questions for Compare."""
    settings.validate()
    files = [(path.name, path.read_bytes()) for path in sample_documents(root)]
    results = ingest_files(workspace, settings.kb_name, files, embedder, progress=progress)
    questions = save_demo_questions(
        workspace, settings.kb_name, [row["question"] for row in sample_questions(settings.questions_per_document, root)]
    )
    log.info("Sample knowledge base %s: %d added, %d demo questions", settings.kb_name, sum(r.status == "added" for r in results), len(questions))
    return SampleBuild(settings.kb_name, results, questions)
