"""Fine-tune time: the pre-launch ETA follows the machine load now; the live label says loading, and no ETA once stopped."""
import json

from streamlit.testing.v1 import AppTest

from core import datasets as D
from core import training as T
from core.run_view import cpu_share, progress_label, speed_now
from tests.conftest import ROOT

STEPS = [{"event": "start", "step": 0, "total": 10}] + [
    {"event": "step", "step": s, "total": 10, "loss": 2.0, "learning_rate": 1e-3, "tokens_per_s": 120.0, "elapsed": 4.0 * s,
     "eta": 4.0 * (10 - s), "load": 2.0} for s in (1, 2, 3)]


def plan(tokens=24_000, device="cpu"):
    return T.RunPlan(trainable_params=1, total_params=2, train_rows=10, total_steps=10, tokens=tokens, tokens_per_s=165.0,
                     tokens_per_s_basis="reference", est_seconds=tokens / 165 + 15, est_memory_gb=1.0, device=device)


def add_run(ws, run_id, status, events):
    with T.open_runs_db(ws) as conn:
        conn.execute("INSERT INTO runs (id, dataset_id, base_model, config, status, created_at) VALUES (?, 'style', ?, '{}', ?, 'now')",
                     (run_id, T.TrainingSettings().base_model, status))
    (ws.runs / run_id).mkdir(parents=True)
    (ws.runs / run_id / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_eta_scales_the_measured_speed_to_the_load_now(workspace):
    add_run(workspace, "run-a", "completed", STEPS)
    quiet = speed_now(workspace, plan(), T.TrainingSettings().base_model, load_now=0.0, cpus=2)
    busy = speed_now(workspace, plan(), T.TrainingSettings().base_model, load_now=9.0, cpus=2)
    assert quiet.tokens_per_s == 120.0  # measured at load 2 on 2 cores = a full share, as now
    assert abs(busy.tokens_per_s - 120.0 * cpu_share(10.0, 2)) < 1e-9 and busy.tokens_per_s == 24.0
    assert busy.seconds > 4 * quiet.seconds
    assert "120 tokens/s measured by run-a at load 2.0" in busy.basis and "load now (9.0 on 2 cores" in busy.basis


def test_eta_scales_by_the_cpu_probe_when_the_run_recorded_one(workspace):
    add_run(workspace, "run-p", "completed", [{"event": "probe", "gflops": 4.0, "load": 1.0}] + STEPS)
    now = speed_now(workspace, plan(), T.TrainingSettings().base_model, load_now=9.0, cpus=2, probe_now=1.0)
    assert now.tokens_per_s == 30.0 and "CPU probe gave 4.0 GFLOP/s" in now.basis and "1.0 GFLOP/s now" in now.basis


def test_cpu_probe_measures_something():
    from core.run_view import cpu_probe

    assert cpu_probe(0.05, threads=1) > 0


def test_eta_without_a_measured_run_uses_the_reference_speed_and_says_so(workspace):
    now = speed_now(workspace, plan(), T.TrainingSettings().base_model, load_now=3.0, cpus=2)
    assert now.tokens_per_s == 165.0 * 0.5 and "reference speed" in now.basis


def test_progress_label_loading_running_and_stopped():
    assert progress_label("queued", [], 10)[1] == "step 0/10 · loading the model…"
    cancelled = STEPS + [{"event": "end", "status": "cancelled", "step": 3}]
    fraction, text = progress_label("cancelled", cancelled)
    assert fraction == 0.3 and "left" not in text and "cancelled" in text
    assert progress_label("running", cancelled)[1].endswith("loading the model…")  # resumed: the worker loads again
    assert "first step running" in progress_label("running", cancelled + [{"event": "start", "step": 3, "total": 10}])[1]
    running = progress_label("running", STEPS)[1]
    assert "about 0:28 left at the speed measured so far" in running


def test_page_shows_preset_and_start_up_front_and_no_eta_on_a_cancelled_run(workspace):
    from tune_support import style_rows, workspace_with_model

    workspace_with_model(workspace.root)
    D.save_dataset(workspace, "style", style_rows(10), kind="style")
    add_run(workspace, "run-c", "cancelled", STEPS + [{"event": "end", "status": "cancelled", "step": 3}])
    at = AppTest.from_file(str(ROOT / "pages" / "fine_tune.py"), default_timeout=90).run()
    assert not at.exception
    assert at.radio(key="ft_preset").value == "demo" and not at.button(key="ft_start").disabled
    assert [e.label for e in at.expander][0].startswith("Advanced")
    assert any(c.value.startswith("Time estimate: 120 tokens/s measured by run-c") for c in at.caption)
    bar = at.get("progress")[0].proto.text
    assert "cancelled" in bar and "left" not in bar
