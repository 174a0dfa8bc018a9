"""core/ is used by pages, the CLI, tests and bench/: it must never import streamlit."""
from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
IMPORT = re.compile(r"^\s*(import\s+streamlit|from\s+streamlit[\s.])", re.MULTILINE)


def test_nothing_under_core_imports_streamlit():
    files = sorted(CORE.rglob("*.py"))
    assert files
    offenders = [str(f.relative_to(CORE.parent)) for f in files if IMPORT.search(f.read_text(encoding="utf-8"))]
    assert offenders == [], f"core must not import streamlit: {offenders}"
