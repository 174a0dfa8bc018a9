"""Each model family end to end through the CLI with `--model DIR`: train 3 steps, targets, Compare's ft column,
merge, GGUF (llama.cpp's converter), the adapter as GGUF, and the GGUF loaded in llama.cpp when it is installed.

The results become docs/families.md and the table between README.md's families markers: when either differs
from what these tests saw, the test rewrites it and fails, so a changed matrix is always a reviewed commit.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from core import families as F
from core import training as T
from core.adapters import adapter_path
from core.cli import main
from tests.tiny_families import FAMILY_KEYS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "docs" / "families.md"
RESULTS: dict[str, dict] = {}
ROWS = [{"instruction": f"Question {i}: what colour is item {i}?", "input": "", "output": f"- Item {i} is blue.\n- It is small.\n- Risk: low."}
        for i in range(10)]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from core.settings import get_workspace

    root = tmp_path_factory.mktemp("family-cli")
    rows = root / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in ROWS))
    ws = get_workspace(root / "ws")
    assert main(["--workspace", str(ws.root), "dataset", "import", str(rows), "--out", "rows", "--heldout", "0.2"]) == 0
    return ws


def _cli(capsys, ws, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--workspace", str(ws.root), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _last_json(text: str) -> dict:
    return json.loads(text[text.rindex("\n{") + 1 :] if "\n{" in text else text)


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        return None
    from core.engines.llamacpp import load_backends

    load_backends()  # this build keeps ggml's CPU backends as loadable libraries (core/engines/llamacpp.py)
    return llama_cpp


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_family_end_to_end_through_the_cli(ws, tiny_family_models, tmp_path, capsys, key):
    folder = str(tiny_family_models[key])
    model_type = F.read_config(folder)["model_type"]
    family = F.family_for(model_type)
    result = RESULTS.setdefault(key, {"family": family.name, "architecture": F.read_config(folder)["architectures"][0]})
    started = time.perf_counter()

    # train 3 steps with the demo preset's "all linear" set from the table
    code, out, err = _cli(capsys, ws, "train", "--dataset", "rows", "--model", folder, "--max-steps", "3", "--batch-size", "2",
                          "--run-id", f"{key}-run", "--json")
    assert code == 0, err + out
    run = T.get_run(ws, f"{key}-run")
    assert run.status == "completed" and run.base_model == folder
    assert run.config["base"]["config_hash"] == F.config_hash(F.read_config(folder))
    assert [e["step"] for e in T.read_progress(ws, run.id) if e.get("event") == "step"] == [1, 2, 3]
    adapter = adapter_path(ws, run.id)
    targets = tuple(json.loads((adapter / "adapter_config.json").read_text())["target_modules"])
    assert set(targets) == set(family.all_linear_targets)
    result["train"] = "yes"
    result["targets"] = ", ".join(family.all_linear_targets)

    # Compare's ft column answers with the adapter on this base
    code, out, err = _cli(capsys, ws, "compare", "What colour is item 3?", "--adapter", run.id, "--variants", "base,ft",
                          "--model", folder, "--max-new-tokens", "6", "--json")
    assert code == 0, err + out
    answers = {a["variant"]: a for a in _last_json(out)["answers"]}
    finetuned = answers["finetuned"]
    assert finetuned["error"] is None and finetuned["adapter"] == str(adapter) and finetuned["new_tokens"] >= 1
    result["compare"] = "yes"

    # merge, then GGUF of the merged model, of the plain base and of the adapter alone: one converter process
    merged, gguf, base_gguf, lora = tmp_path / "merged", tmp_path / f"{key}.gguf", tmp_path / f"{key}-base.gguf", tmp_path / f"{key}-lora.gguf"
    code, out, err = _cli(capsys, ws, "export", run.id, "--merged", str(merged), "--gguf", str(gguf), "--base-gguf", str(base_gguf),
                          "--lora-gguf", str(lora), "--json")
    exported = _last_json(out)
    assert (merged / "config.json").exists() and list(merged.glob("*.safetensors")), err
    assert "TEMPLATE" in (merged / "Modelfile").read_text()
    result["merged"] = "yes"
    errors = exported["errors"]
    assert code == (2 if errors else 0)
    if "gguf" in errors:
        assert "llama.cpp could not convert" in errors["gguf"]
        result["gguf"] = "no: " + errors["gguf"].split(": ", 1)[1].splitlines()[0][:140]
    else:
        result["gguf"] = "yes"
        assert gguf.exists() and "TEMPLATE" in (tmp_path / f"{key}.Modelfile").read_text()
    assert "lora_gguf" not in errors, errors  # the adapter converts whatever the tokenizer: it has no vocabulary
    import gguf as gguf_py

    fields = gguf_py.GGUFReader(str(lora)).fields
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert "ADAPTER ./" in (tmp_path / f"{key}-lora.Modelfile").read_text()
    result["lora gguf"] = "yes"

    llama_cpp = _llama_cpp()
    if result["gguf"] == "yes" and llama_cpp is not None:
        llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=256, verbose=False, n_threads=1)
        text = llm.create_completion("Item 3 is", max_tokens=4, temperature=0.0)["choices"][0]["text"]
        assert isinstance(text, str)
        result["llama.cpp"] = "loads merged GGUF"
        if "base_gguf" in errors:
            result["llama.cpp"] += "; base GGUF not converted"
        else:
            try:  # the adapter on the plain base: an extra, recorded rather than required
                with_lora = llama_cpp.Llama(model_path=str(base_gguf), lora_path=str(lora), n_ctx=256, verbose=False, n_threads=1)
                with_lora.create_completion("Item 3 is", max_tokens=2, temperature=0.0)
                result["llama.cpp"] += " and base + LoRA GGUF"
            except ValueError as error:
                result["llama.cpp"] += f"; base + LoRA GGUF did not load ({str(error).split(':')[0]})"
    else:
        result["llama.cpp"] = "not run (llama_cpp not installed)" if llama_cpp is None else "n/a"
    result["system role"] = "yes" if family.system_role else "folded into first user turn"
    print(f"{key}: {time.perf_counter() - started:.1f} s, {result}")


def test_evaluate_and_the_adapter_check_take_the_model(ws, tiny_family_models, tmp_path, capsys):
    """`evaluate --model DIR` answers with that model; an adapter of another family's run is refused by name."""
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What colour is item 3?", "answer": "blue"}) + "\n")
    phi3 = str(tiny_family_models["phi3"])
    code, out, err = _cli(capsys, ws, "evaluate", "--questions", str(questions), "--variants", "base", "--model", phi3,
                          "--max-new-tokens", "4", "--json")
    assert code == 0, err
    assert _last_json(out)["answers"] == 1
    if "llama" in RESULTS:  # the llama run's adapter on the Phi-3 base
        code, out, err = _cli(capsys, ws, "compare", "Q?", "--adapter", "llama-run", "--variants", "ft", "--model", phi3, "--json")
        error = {a["variant"]: a for a in _last_json(out)["answers"]}["finetuned"]["error"]
        assert f"trained on '{tiny_family_models['llama']}'" in error and f"loaded model is '{phi3}'" in error


def render_matrix(results: dict[str, dict]) -> str:
    columns = ["family", "architecture", "targets", "system role", "train", "compare", "merged", "gguf", "lora gguf", "llama.cpp"]
    heads = ["family", "architecture", "LoRA targets (all linear)", "system role", "train 3 steps", "Compare ft",
             "merged safetensors", "GGUF (merged)", "GGUF adapter", "llama.cpp"]
    lines = [
        "# Model families: what each one can do here",
        "",
        "Written by `tests/test_family_cli.py` (tiny random-init models of each architecture, hidden size 64, 2 layers,",
        "through `python -m core ... --model DIR`). Do not edit by hand: run the test and commit the file it writes.",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(heads),
    ]
    for key in FAMILY_KEYS:
        row = results[key]
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "/") for c in columns) + " |")
    lines += ["", "Notes from the family table (core/families.py):", ""]
    lines += [f"- **{row['family']}**: {row['notes']}" for row in F.describe()]
    lines += ["- Any other architecture trains on its own Linear layers (all but the output head); its GGUF export works",
              "  when llama.cpp's converter knows it and says why otherwise."]
    if any("pre-tokenizer was not recognized" in str(r.get("gguf")) for r in results.values()):
        lines += ["- \"BPE pre-tokenizer was not recognized\": llama.cpp names a BPE tokenizer by hashing the ids of a test text.",
                  "  transformers loads every `model_type: qwen2` folder as Qwen2Tokenizer, which replaces tokenizer.json's",
                  "  pre-tokenizer with Qwen2's own split; the test model's SmolLM2 vocabulary split that way hashes to",
                  "  nothing llama.cpp knows. A real Qwen2/2.5 keeps its own vocabulary and split, whose hash the converter",
                  "  lists (not run here: no network for the real files); a Qwen2-architecture model with another tokenizer",
                  "  meets the same refusal, and the export error says so. Its adapter GGUF converts either way."]
    if any("did not load" in str(r.get("llama.cpp")) for r in results.values()):
        lines += ["- \"did not load\": llama.cpp refused the GGUF of the plain test base (run with verbose=True to see why; a",
                  "  model named phi3/phi-3 must have <unk>, <s> and </s> in its vocabulary, for example)."]
    if any("not installed" in str(r.get("llama.cpp")) for r in results.values()):
        lines += ["- llama.cpp column: llama-cpp-python was not installed when these tests ran; the GGUF files were checked",
                  "  with the gguf reader only."]
    lines.append("")
    return "\n".join(lines)


README_START, README_END = "<!-- families:start -->", "<!-- families:end -->"


def _short(cell: str) -> str:
    """A README cell: 'yes', or 'no: ' and the refusal without the exception name or the converter's advice."""
    if not cell.startswith("no: "):
        return cell
    reason = cell[4:].split(": ", 1)[-1] if "Error: " in cell else cell[4:]
    return "no: " + reason.split(" - ")[0]


def render_readme_table(results: dict[str, dict]) -> str:
    """The README's copy: what each family can and cannot do, details in docs/families.md."""
    columns = ["family", "train", "compare", "merged", "gguf", "lora gguf", "llama.cpp"]
    heads = ["family", "train", "Compare ft", "merged safetensors", "GGUF (merged)", "GGUF adapter", "llama.cpp"]
    lines = [README_START,
             "<!-- written by tests/test_family_cli.py from tiny models of each architecture; do not edit by hand -->",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for key in FAMILY_KEYS:
        lines.append("| " + " | ".join(_short(str(results[key].get(c, ""))).replace("|", "/") for c in columns) + " |")
    return "\n".join(lines + [README_END])


def test_support_matrix_is_current():
    if set(RESULTS) != set(FAMILY_KEYS) or any("lora gguf" not in r for r in RESULTS.values()):
        pytest.skip("run the whole file: the matrix needs every family's result")
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    assert README_START in readme and README_END in readme, f"README.md needs the {README_START} ... {README_END} markers"
    assert "docs/families.md" in readme
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    stale = []  # both files rewritten in one run, then one failure to review them
    text = render_matrix(RESULTS)
    if text != (MATRIX.read_text() if MATRIX.exists() else ""):
        MATRIX.parent.mkdir(exist_ok=True)
        MATRIX.write_text(text)
        stale.append(str(MATRIX))
    table = render_readme_table(RESULTS)
    if readme[start:end] != table:
        readme_path.write_text(readme[:start] + table + readme[end:])
        stale.append(str(readme_path))
    if stale:
        pytest.fail(f"{' and '.join(stale)} out of date and rewritten; review and commit")
