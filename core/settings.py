"""Where the app keeps its files. Nothing happens on import."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_ENV = "STUDIO_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    """Every path the app writes to, derived from one root folder."""

    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "studio.db"

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def evaluations(self) -> Path:
        return self.root / "evaluations"

    def ensure(self) -> "Workspace":
        for folder in (self.root, self.indexes, self.datasets, self.runs, self.models, self.reports, self.evaluations):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def get_workspace(root: str | os.PathLike | None = None) -> Workspace:
    """The workspace from an explicit path, else $STUDIO_WORKSPACE, else ./workspace."""
    chosen = root or os.environ.get(WORKSPACE_ENV) or "workspace"
    return Workspace(Path(chosen).expanduser().resolve()).ensure()
