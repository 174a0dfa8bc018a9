"""Training data: rows from documents or an upload; validate, edit, split and save."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui  # noqa: F401  (first import leaves Streamlit's legacy pages/ router)

from core import datasets as D
from core.errors import StudioError
from core.settings import get_workspace
from ui import state
from ui.common import md_escape


def rows_from_documents(ws) -> None:
    from core.knowledge import list_knowledge_bases

    kbs = [kb.name for kb in list_knowledge_bases(ws)]
    if not kbs:
        st.info("No knowledge base yet: add documents on the Documents page, or upload rows in the next tab.")
    else:
        active = state.active_kb()
        kb = st.selectbox("Knowledge base", kbs, index=kbs.index(active) if active in kbs else 0, key="td_kb")
        kind = st.radio("Kind of rows", ["qa", "summary", "style"], horizontal=True, key="td_kind",
                        format_func={"qa": "Question → answer", "summary": "Summary (3 bullets)", "style": "Voice / format"}.get)
        style = D.DEFAULT_STYLE
        use_model = False
        if kind == "style":
            style = st.text_input("Style to teach", D.DEFAULT_STYLE, key="td_style", help=D.DatasetBuildSettings.__dataclass_fields__["style"].metadata["help"])
            rule = D.detect_style_rule(style)
            st.caption(f"Checkable rule **{rule}**: {D.STYLE_RULES[rule]}. Outputs are built from each chunk's own sentences.")
        if kind == "qa":
            use_model = st.checkbox("Ask the current model for questions (slow: ~10 s per chunk on CPU)", key="td_use_model",
                                    help="Off: extractive questions, no model needed. Unparseable model replies fall back to extractive.")
        max_rows = st.number_input("Max rows", 1, 5000, 200, key="td_max_rows")
        if st.button("Build rows", type="primary", key="td_build"):
            bar = st.progress(0.0, text="Building rows…")
            generate = None
            if use_model:
                from core.engines import generate_text
                from core.generation import DecodingSettings
                from ui.models import get_engine

                engine = get_engine()  # the sidebar's engine and model
                generate = lambda prompt: generate_text(engine, [{"role": "user", "content": prompt}], DecodingSettings(max_new_tokens=80))  # noqa: E731
            skipped: list[dict] = []
            try:
                rows = D.build_from_knowledge_base(
                    ws, kb, D.DatasetBuildSettings(kind=kind, style=style, use_model=use_model, max_rows=int(max_rows)), generate,
                    progress=lambda done, total: bar.progress(done / max(total, 1), text=f"Chunk {done}/{total}"), skipped=skipped,
                )
            except StudioError as error:
                st.error(str(error))
            else:
                st.session_state["tune_rows"] = rows
                st.session_state["td_skipped"] = D.skipped_summary(skipped)
                st.session_state["tune_meta"] = {"kind": kind, "style_rule": D.detect_style_rule(style) if kind == "style" else None,
                                                  "origin": f"kb:{kb}", "style": style if kind == "style" else None}
                bar.progress(1.0, text=f"{len(rows)} rows built")


def rows_from_upload() -> None:
    upload = st.file_uploader("Rows file", type=["jsonl", "csv"], key="td_upload",
                              help="JSONL or CSV with instruction/input/output or prompt/completion columns.")
    max_length = st.number_input("Max length (tokens) to flag", 32, 8192, 512, key="td_max_length")
    if upload is not None:
        try:
            report = D.parse_upload(upload.name, upload.getvalue(), max_length=int(max_length))
        except StudioError as error:
            st.error(str(error))
        else:
            (st.success if report.ok else st.warning)(report.summary())
            if report.errors:
                st.dataframe(pd.DataFrame(report.errors, columns=["line", "problem"]), hide_index=True)
            if report.too_long:
                st.caption(f"Lines longer than {report.max_length} tokens: {', '.join(map(str, report.too_long[:30]))}")
            if report.rows and st.button(f"Use the {len(report.rows)} valid rows", key="td_use_upload"):
                st.session_state["tune_rows"] = report.rows
                st.session_state.pop("td_skipped", None)
                st.session_state["tune_meta"] = {"kind": "imported", "style_rule": None, "origin": f"file:{upload.name}"}


def preview_rows(rows: list[dict]) -> None:
    """The rows, best first, and the picked one whole (a table cell cuts it)."""
    st.subheader(f"Rows ({len(rows)})")
    st.caption("Best rows first (mostly prose, whole sentences). Click a row to read it whole.")
    overview = pd.DataFrame([{"#": i + 1, "quality": r.get("source", {}).get("quality"), "document": r.get("source", {}).get("document", ""),
                              "page": r.get("source", {}).get("page"), "output": r["output"].replace("\n", " ⏎ ")} for i, r in enumerate(rows)])
    picked = st.dataframe(overview, hide_index=True, width="stretch", height=240, on_select="rerun", selection_mode="single-row",
                          key="td_pick", column_config={"quality": st.column_config.NumberColumn(format="%.2f")})
    chosen = picked.selection.rows[0] if picked and picked.selection.rows else 0
    whole = rows[min(chosen, len(rows) - 1)]
    with st.container(border=True):
        source = whole.get("source", {})
        st.markdown(f"**Row {chosen + 1}** · {md_escape(str(source.get('document', 'n/a')))} · page {source.get('page', 'n/a')}")
        st.caption("Instruction")
        st.text(whole["instruction"])
        if whole["input"]:
            st.caption("Input (the passage)")
            st.text(whole["input"])
        st.caption("Output (what the model learns to write)")
        st.text(whole["output"])


def save_form(ws, rows: list[dict]) -> None:
    """Edit the rows, split off the held-out share and save them as a dataset."""
    frame = pd.DataFrame(
        [{"instruction": r["instruction"], "input": r["input"], "output": r["output"],
          "document": r.get("source", {}).get("document", ""), "page": r.get("source", {}).get("page"),
          "source": json.dumps(r.get("source", {}), ensure_ascii=False)} for r in rows]
    )
    with st.expander("Edit rows"):
        edited = st.data_editor(frame, num_rows="dynamic", hide_index=True, key="td_editor",
                                column_config={"source": None}, disabled=["document", "page"])
    with st.form("td_save"):
        c1, c2, c3, c4 = st.columns(4)
        dataset_id = c1.text_input("Dataset id", "my-dataset")
        fmt = c2.selectbox("Format", D.FORMATS, format_func={"instruction": "instruction / input / output", "prompt_completion": "prompt / completion"}.get)
        heldout = c3.slider("Held-out share", 0, 50, 20, 5, format="%d%%", key="td_heldout_pct",
                            help="Rows kept out of training: the questions the Evaluate page asks.") / 100
        seed = c4.number_input("Split seed", 0, 10_000, 0)
        replace = st.checkbox("Replace the dataset with this id if it exists", key="td_replace",
                              help="Off by default, so saving never silently replaces stored rows. "
                                   "A dataset a training run used is never replaced.")
        if st.form_submit_button("Split and save", type="primary"):
            records = []
            for record in edited.fillna("").to_dict("records"):
                try:
                    source = json.loads(record.get("source") or "{}")
                except json.JSONDecodeError:
                    source = {}
                records.append(D.make_row(record["instruction"], record["input"], record["output"], source))
            meta = st.session_state.get("tune_meta", {"kind": "imported", "style_rule": None, "origin": "editor"})
            try:
                info = D.save_dataset(ws, dataset_id, records, kind=meta["kind"], fmt=fmt, heldout_fraction=heldout, seed=int(seed),
                                      style_rule=meta.get("style_rule"), origin=meta.get("origin", ""), extra_meta={"style": meta.get("style")},
                                      replace=replace)
            except StudioError as error:
                st.error(str(error))
            else:
                st.session_state["td_saved"] = (info.id, fmt)
    if st.session_state.get("td_saved"):
        saved_id, saved_fmt = st.session_state["td_saved"]
        try:
            info = D.get_dataset(ws, saved_id)
        except StudioError:
            st.session_state.pop("td_saved")
        else:
            st.success(f"Saved {info.id}: {info.train_rows} training rows and {info.heldout_rows} held-out rows. "
                       "Next: train an adapter on the **Fine-tune** page; the held-out rows are the questions on **Evaluate**.")
            st.download_button("Download training rows (JSONL)", D.export_rows(D.load_dataset_rows(ws, info.id), saved_fmt), f"{info.id}-train.jsonl")


def edit_and_save(ws) -> None:
    rows = st.session_state["tune_rows"]
    if st.session_state.get("td_skipped"):
        st.caption(st.session_state["td_skipped"] + " (boilerplate and passages without a stated risk make no row).")
    if rows:
        preview_rows(rows)
        save_form(ws, rows)


def saved_datasets(ws) -> None:
    st.subheader("Saved datasets")
    saved = D.list_datasets(ws)
    if saved:
        kinds = {"qa": "Question → answer", "summary": "Summary", "style": "Voice / format", "imported": "Imported"}
        st.dataframe(pd.DataFrame([{
            "Dataset": d.id, "Kind": kinds.get(d.kind, d.kind), "Format": d.format, "Style rule": d.style_rule or "n/a",
            "From": d.origin or "n/a", "Training rows": d.train_rows, "Held-out rows": d.heldout_rows, "Seed": d.seed,
            "Created": str(d.created_at or "")[:19].replace("T", " "),
        } for d in saved]), hide_index=True, width="stretch")
    else:
        st.caption("None yet.")


def main() -> None:
    ws = get_workspace()
    st.title("Training data")
    st.caption("Turn documents into instruction rows (or upload your own), check them, edit them, and keep held-out rows for evaluation.")
    if "tune_rows" not in st.session_state:
        st.session_state["tune_rows"] = []
    build_tab, upload_tab = st.tabs(["From documents", "Upload JSONL / CSV"])
    with build_tab:
        rows_from_documents(ws)
    with upload_tab:
        rows_from_upload()
    edit_and_save(ws)
    saved_datasets(ws)


main()
