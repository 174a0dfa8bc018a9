"""Cold start: the Decide and Documents pages (and the sidebar every page shows) never import torch,
transformers or sentence_transformers until a model is needed (~8 s each on this machine).

Each page runs through Streamlit's AppTest in a fresh interpreter, so nothing another test imported counts.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "sentence_transformers", "peft", "onnxruntime")
DECIDE_ALSO_AVOIDS = ("pandas",)  # plotly.express pulls pandas + pyarrow: 4 s of a cold start under load

PROBE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
print(json.dumps({"exception": [str(e.value) for e in at.exception], "title": [t.value for t in at.title],
                  "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY + DECIDE_ALSO_AVOIDS,)


def _run_page(script: str, tmp_path) -> dict:
    env = dict(os.environ, STUDIO_WORKSPACE=str(tmp_path / "ws"), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script, title, with_kb", [
    ("app.py", "Decide: RAG, fine-tuning, or both?", False),  # the router: sidebar plus the default page
    ("pages/documents.py", "Documents", True),  # listing a knowledge base and its index needs no model
])
def test_first_pages_import_no_model_library(script, title, with_kb, tmp_path, fake_embedder):
    if with_kb:
        from core.knowledge import ingest_files
        from core.settings import get_workspace

        ingest_files(get_workspace(tmp_path / "ws"), "handbook", [("leave.txt", b"Every employee has 26 days of leave. " * 9)],
                     fake_embedder)
    result = _run_page(script, tmp_path)
    assert result["exception"] == []
    assert title in result["title"]
    heavy = [m for m in result["heavy"] if m in HEAVY or script == "app.py"]  # Documents shows tables: pandas is fine there
    assert heavy == [], f"{script} imported {heavy} before any model was needed"
