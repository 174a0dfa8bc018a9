"""Fine-tune: LoRA/QLoRA settings, pre-launch estimate, a live view of the run, history and export.

Everything shown about a run is read from the workspace, so a reloaded tab reconnects to it.
"""
from __future__ import annotations

import dataclasses
import time

import pandas as pd
import streamlit as st

from core.adapters import adapter_name, find_adapters
from ui.adapter_names import rename_adapter_form

from core import training as T
from core.datasets import list_datasets
from core.errors import StudioError
from core.models import GENERATOR_CHOICES
from core.settings import get_workspace
from core.run_view import cpu_probe, progress_label, speed_now
from ui import state
from ui.common import fmt_number, format_seconds
from ui.models import model_facts_for

PRESET_BLURBS = {
    "demo": "Quick: a few minutes on this CPU, enough to teach a format or a voice.",
    "quality": "Thorough: several times longer, more capacity for vocabulary and style.",
}


def _help(cls, name: str) -> str:
    return cls.__dataclass_fields__[name].metadata.get("help", "")


# ---------------------------------------------------------------- preset + Start up front, the knobs under "Advanced"
def advanced_settings(facts, base_model: str, lora0, train0, k: str):
    """The LoRA and training knobs (widget keys per preset, so switching preset resets them); returns (lora, training)."""
    qlora_ok, qlora_reason = T.qlora_support()
    st.markdown("**LoRA**")
    c1, c2, c3 = st.columns(3)
    r = c1.number_input("Rank r", 1, 256, lora0.r, key=k + "r", help=_help(T.LoraSettings, "r"))
    alpha = c2.number_input("Alpha", 1, 512, lora0.alpha, key=k + "alpha", help=_help(T.LoraSettings, "alpha"))
    dropout = c3.number_input("Dropout", 0.0, 0.9, float(lora0.dropout), 0.05, key=k + "dropout", help=_help(T.LoraSettings, "dropout"))
    targets = st.multiselect("Target modules", list(facts.linear_names), list(T.resolve_lora(lora0, facts).target_modules),
                             key=k + "targets", help="The model's own Linear layer names. " + _help(T.LoraSettings, "target_modules"))
    st.markdown("**Training**")
    c1, c2, c3, c4 = st.columns(4)
    lr = c1.number_input("Learning rate", 0.0, 0.1, float(train0.learning_rate), format="%.5f", key=k + "lr", help=_help(T.TrainingSettings, "learning_rate"))
    epochs = c2.number_input("Epochs", 0.0, 100.0, float(train0.epochs), 0.5, key=k + "epochs", help=_help(T.TrainingSettings, "epochs"))
    max_steps = c3.number_input("Max steps (0 = epochs)", 0, 100_000, train0.max_steps, key=k + "steps", help=_help(T.TrainingSettings, "max_steps"))
    save_steps = c4.number_input("Checkpoint every", 1, 10_000, train0.save_steps, key=k + "save", help=_help(T.TrainingSettings, "save_steps"))
    c1, c2, c3, c4 = st.columns(4)
    batch = c1.number_input("Batch size", 0, 256, train0.batch_size, key=k + "batch", help=_help(T.TrainingSettings, "batch_size"))
    accum = c2.number_input("Grad accumulation", 1, 256, train0.grad_accum, key=k + "accum", help=_help(T.TrainingSettings, "grad_accum"))
    max_length = c3.number_input("Max length", 32, 131_072, train0.max_length, key=k + "maxlen", help=_help(T.TrainingSettings, "max_length"))
    seed = c4.number_input("Seed", 0, 1_000_000, train0.seed, key=k + "seed")
    c1, c2, c3 = st.columns(3)
    packing = c1.checkbox("Packing", train0.packing, key=k + "packing", help=_help(T.TrainingSettings, "packing"))
    completion_only = c2.checkbox("Completion-only loss", train0.completion_only_loss, key=k + "col", help=_help(T.TrainingSettings, "completion_only_loss"))
    qlora = c3.checkbox("QLoRA (4-bit)", False, key=k + "qlora", disabled=not qlora_ok, help=qlora_reason)
    if not qlora_ok:
        st.caption(f"QLoRA is off: {qlora_reason}")
    lora = T.LoraSettings(r=int(r), alpha=int(alpha), dropout=float(dropout), target_modules=tuple(targets))
    training = dataclasses.replace(
        train0, base_model=base_model, learning_rate=float(lr), epochs=float(epochs), max_steps=int(max_steps), batch_size=int(batch),
        grad_accum=int(accum), max_length=int(max_length), packing=bool(packing), seed=int(seed),
        completion_only_loss=bool(completion_only), qlora=bool(qlora), save_steps=int(save_steps),
    )
    return lora, training


def plan_and_start(ws, dataset_id: str, lora, training, facts) -> None:
    """The pre-launch estimate (steps, time at today's load, memory) and the Start button."""
    plan = None
    try:
        plan = T.plan_run(ws, dataset_id, lora, training, facts=facts)
    except StudioError as error:
        st.error(str(error))
    if plan:
        probe = st.session_state.get("ft_probe")
        if not probe or time.time() - probe[0] > 30:  # a 0.25 s CPU probe, at most twice a minute
            probe = st.session_state["ft_probe"] = (time.time(), cpu_probe())
        now = speed_now(ws, plan, training.base_model, probe_now=probe[1])
        m1, m2, m3, m4 = st.columns(4)
        # delta_arrow="off": these deltas are context (of what, at what speed), not changes up or down
        m1.metric("Estimated time", format_seconds(now.seconds), f"~{now.tokens_per_s:.0f} tokens/s at today's load",
                  delta_color="off", delta_arrow="off", help="minutes:seconds, at the machine load right now")
        m2.metric("Steps", plan.total_steps, f"{plan.tokens:,} tokens", delta_color="off", delta_arrow="off")
        m3.metric("Trainable parameters", f"{plan.trainable_params:,}", f"{plan.trainable_percent:.2f}% of {plan.total_params / 1e6:.0f}M",
                  delta_color="off", delta_arrow="off")
        m4.metric("Estimated memory", f"{plan.est_memory_gb:.1f} GB", plan.device.upper(), delta_color="off", delta_arrow="off")
        st.caption(f"Time estimate: {now.basis}")
    running = T.active_run(ws)
    if st.button("Start training", type="primary", disabled=plan is None or running is not None, key="ft_start",
                 icon=":material/play_arrow:", help="One run at a time per workspace." if running else None):
        try:
            run = T.start_run(ws, dataset_id, lora, training)
        except StudioError as error:
            st.error(str(error))
        else:
            st.session_state["ft_watch"] = run.id
            st.toast(f"Started {run.id}")
            st.rerun()  # so the button, the history and the live view below all show the new run


def start_form(ws, datasets) -> None:
    """Dataset and preset up front, the knobs under "Advanced", the estimate and Start in a box above them."""
    plan_hint = getattr(state.applied_plan(), "lora_preset", None)
    names = list(T.PRESETS)
    c1, c2 = st.columns(2)
    dataset_id = c1.selectbox("Dataset", [d.id for d in datasets], key="ft_dataset",
                              format_func=lambda i: next(f"{d.id} ({d.train_rows} rows, {d.kind})" for d in datasets if d.id == i))
    preset_name = c2.radio("Preset", names, index=names.index(plan_hint) if plan_hint in names else 0, horizontal=True, key="ft_preset",
                           format_func=lambda n: n.capitalize(),
                           help="demo: a few minutes on a laptop CPU, enough to change the format; quality: slower, more capacity.")
    c2.caption(PRESET_BLURBS.get(preset_name, "") + (f" Preselected from your decision plan: **{plan_hint}**." if plan_hint in names else ""))
    lora0, train0 = T.preset(preset_name)
    summary = st.container(border=True)  # filled below, once the Advanced settings are read
    advanced = st.expander("Advanced: model, LoRA and training settings")
    sidebar_model = state.generator_spec().model_id  # the sidebar's model choice
    choices = list(GENERATOR_CHOICES) + ([sidebar_model] if sidebar_model not in GENERATOR_CHOICES else [])
    base_model = advanced.selectbox("Base model", choices, index=choices.index(sidebar_model),
                                    key="ft_base", help=_help(T.TrainingSettings, "base_model"))
    try:
        facts = model_facts_for(ws, base_model)
    except StudioError as error:
        summary.error(str(error))
        return
    with advanced:
        lora, training = advanced_settings(facts, base_model, lora0, train0, f"ft_{preset_name}_")
    with summary:
        plan_and_start(ws, dataset_id, lora, training, facts)


# ---------------------------------------------------------------- live view (state from the workspace)
@st.fragment(run_every=2.0)
def live_view(ws) -> None:
    runs = T.list_runs(ws)
    if not runs:
        return
    active = next((r for r in runs if r.status in T.ACTIVE), None)
    watched = st.session_state.get("ft_watch")
    run = active or next((r for r in runs if r.id == watched), runs[0])
    seen = st.session_state.setdefault("ft_seen_status", {})
    finished_now = seen.get(run.id) in T.ACTIVE and run.status not in T.ACTIVE
    seen[run.id] = run.status
    if finished_now:
        st.rerun()  # the whole page: the Start button, the history and the export below live outside this fragment
    st.subheader(f"Run {run.id}")
    events = T.read_progress(ws, run.id)
    steps = [e for e in events if e.get("event") == "step"]
    fraction, label = progress_label(run.status, events, run.config.get("plan", {}).get("total_steps", 0))
    st.progress(fraction, text=label)
    if steps:
        import plotly.graph_objects as go

        m1, m2, m3 = st.columns(3)
        change = f"{steps[-1]['loss'] - steps[0]['loss']:+.4f} since step {steps[0]['step']}" if len(steps) > 1 else None
        m1.metric("Loss", f"{steps[-1]['loss']:.4f}", change, delta_color="inverse")
        m2.metric("Tokens/s", f"{steps[-1]['tokens_per_s']:.0f}")
        m3.metric("Learning rate", f"{steps[-1]['learning_rate']:.2e}")
        figure = go.Figure(go.Scatter(x=[e["step"] for e in steps], y=[e["loss"] for e in steps], mode="lines+markers", name="loss"))
        figure.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step", yaxis_title="training loss")
        st.plotly_chart(figure, key=f"loss_{run.id}")
    if run.error:
        st.error(run.error)
    c1, c2 = st.columns(2)
    if run.status in T.ACTIVE and c1.button("Cancel", key=f"cancel_{run.id}", help="Stops after the current step and keeps a checkpoint."):
        T.cancel_run(ws, run.id)
        st.toast("Stop requested: the run saves a checkpoint and stops after this step.")
    if run.status in ("cancelled", "failed") and c2.button("Resume", key=f"resume_{run.id}", help="Continue from the last checkpoint."):
        try:
            T.resume_run(ws, run.id)
        except StudioError as error:
            st.error(str(error))
    if run.status == "completed":
        st.success(f"Adapter saved ({(run.adapter_size or 0) / 2**20:.1f} MB), final loss {run.final_loss:.4f}, {format_seconds(run.duration_s)}.")
    with st.expander("Log (last lines)"):
        st.code(T.read_log(ws, run.id, 15) or "(empty)", language=None)


def serve_panel(ws, run_ids: list[str]) -> None:
    """Files and exact commands to serve a fine-tune with Ollama, vLLM or llama.cpp's server (core.engines.serve)."""
    from core.engines.serve import TARGETS, export_for_serving

    st.markdown("**Serve your fine-tune** where your team deploys models, then answer through it with the openai engine.")
    left, middle, right = st.columns([2, 1, 1])
    run_id = left.selectbox("Run to serve", run_ids, key="ft_serve_run")
    target = middle.selectbox("Server", TARGETS, key="ft_serve_target")
    if right.button("Write files and commands", key="ft_serve", icon=":material/dns:"):
        try:
            with st.spinner("Preparing the files (a GGUF LoRA is converted once)…"):
                plan = export_for_serving(ws, run_id, target)
        except StudioError as error:
            st.error(str(error))
            return
        st.success(f"Files in {plan.folder}")
        st.code("\n".join(plan.commands), language="bash")
        for note in plan.notes:
            st.caption(note)


# ---------------------------------------------------------------- history and export
def run_history(ws, runs) -> None:
    st.dataframe(pd.DataFrame([{
        "adapter": adapter_name(ws, r.id), "run": r.id, "status": r.status, "dataset": r.dataset_id, "base model": r.base_model,
        "final loss": fmt_number(r.final_loss, 4),  # text, so a missing loss reads n/a
        "duration": format_seconds(r.duration_s),
        "adapter MB": f"{r.adapter_size / 2**20:.1f}" if r.adapter_size else "n/a",
        "created": str(r.created_at or "")[:19].replace("T", " "), "error": r.error or "",
    } for r in runs]), hide_index=True, width="stretch")
    c1, c2 = st.columns([3, 1])
    to_delete = c1.selectbox("Run to delete", [r.id for r in runs if r.status not in T.ACTIVE] or ["–"], key="ft_delete_pick")
    if c2.button("Delete run", key="ft_delete", disabled=to_delete == "–"):
        try:
            T.delete_run(ws, to_delete)
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()


def export_panel(ws) -> None:
    adapters = find_adapters(ws)  # the same list as Compare and Evaluate (core/adapters.py)
    rename_adapter_form(ws, [a.run_id for a in adapters])
    st.subheader("Export")
    if not adapters:
        st.caption("Finish a run to export its adapter.")
    else:
        with st.form("ft_export"):
            run_id = st.selectbox("Adapter", [a.run_id for a in adapters], format_func=lambda i: adapter_name(ws, i))
            folder = st.text_input("Merged model folder", str(ws.root / "exports" / "merged"))
            gguf = st.checkbox("Also write a GGUF file (llama.cpp's converter; says why when it cannot)")
            if st.form_submit_button("Merge and export"):
                try:
                    with st.spinner("Merging the adapter into the base weights…"):
                        merged = T.export_merged(ws, run_id, folder)
                        gguf_path = T.export_gguf(ws, run_id, merged, merged.parent / f"{merged.name}.gguf") if gguf else None
                except StudioError as error:
                    st.error(str(error))
                else:
                    st.success(f"Merged model in {merged} with an Ollama Modelfile" + (f"; GGUF at {gguf_path}" if gguf_path else "") + ".")
        st.caption(f"Adapter folder for serving with peft or vLLM: {adapters[0].path}")
        serve_panel(ws, [a.run_id for a in adapters])


def main() -> None:
    ws = get_workspace()
    st.title("Fine-tune")
    st.caption("Teach the model a voice, a format or a vocabulary with a LoRA adapter. The run is a separate process: it survives reloads and can be cancelled and resumed.")
    datasets = list_datasets(ws)
    if not datasets:
        st.info("No training dataset yet: build or upload rows on the Training data page first.")
    else:
        start_form(ws, datasets)
    live_view(ws)
    st.subheader("Run history")
    runs = T.list_runs(ws)
    if not runs:
        st.caption("No runs yet.")
        return
    run_history(ws, runs)
    export_panel(ws)


main()
