"""The decision report: one self-contained HTML file (inline CSS, plotly.js inlined once) that opens offline.

Sections (each an element with a stable id, so tests and readers can find them):
  decision, estimate, scoreboard, charts, retrieval, examples, training, latency, method, bottom (the measured bottom line).
Every piece of user or model text goes through `html.escape`. core.report_pdf prints it to PDF. The questionnaire section renders
whatever `decision` dict it is given (core.decision.decision_to_dict output fits); the lead can
swap in the decide engineer's renderer at merge time.
"""
from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from core import charts
from core.adapters import adapter_name
from core.errors import StudioError
from core.evaluation.bottom_line import bottom_line, bottom_line_text
from core.evaluation.runner import resolve_adapter
from core.evaluation.store import get_evaluation, load_results, load_retrieval, load_summary
from core.evaluation.views import SCOREBOARD_COLUMNS
from core.settings import Workspace
from core.storage import atomic_write_text, read_json, read_jsonl
from core.variants import VARIANT_LABELS

SECTIONS = {
    "decision": "Questionnaire and recommendation",
    "estimate": "Cost estimate",
    "scoreboard": "Scoreboard",
    "charts": "Charts",
    "retrieval": "Retrieval",
    "ragas": "RAGAS scores (judge model, optional)",
    "examples": "Example answers",
    "training": "Training run",
    "latency": "Latency",
    "method": "What was measured, and on what",
    "bottom": "Bottom line",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2937;background:#f8fafc}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:28px;margin:8px 0 4px} h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #e5e7eb;padding-bottom:4px}
h3{font-size:16px;margin:16px 0 6px}
.muted{color:#6b7280;font-size:13px} .tag{display:inline-block;padding:2px 8px;border-radius:10px;background:#eef2ff;color:#3730a3;font-size:12px;margin-right:4px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px;background:#fff}
th,td{border:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top} th{background:#f1f5f9}
td.num{text-align:right;font-variant-numeric:tabular-nums} .na{color:#9ca3af;font-style:italic}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin:8px 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px} pre{white-space:pre-wrap;font-family:inherit;margin:4px 0}
.best{border-left:4px solid #10b981}.worst{border-left:4px solid #ef4444}
nav a{margin-right:12px;font-size:13px}
.chart{margin:8px 0}
@page{margin:12mm}
@media print{
nav,.modebar-container{display:none!important}
body{background:#fff;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:none;padding:0}
h1{font-size:22px;margin-top:0} h2{font-size:17px;margin:18px 0 6px} h3{font-size:14px}
h2,h3{break-after:avoid} body{font-size:12px} table{font-size:11px} th,td{padding:3px 5px} .card{padding:8px 10px} .card h3{font-size:13px}
.chart,.card,tr{break-inside:avoid} .pair>div>.muted{break-after:avoid} thead{display:table-header-group}
}
"""

# Charts are drawn by plotly.js at the screen width, in pixels: a print layout does not resize them. So just
# before printing (the browser's Print dialog or headless Chromium's --print-to-pdf, both fire `beforeprint`) every
# chart is redrawn at a width that fits the printable width of A4 (186 mm = 703 px at 12 mm margins) and Letter
# (192 mm = 725 px), and afterwards back to the width of the window.
PRINT_CHART_WIDTH_PX = 680
PRINT_JS = """
(function(){
  function plots(){ return window.Plotly ? Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot')) : []; }
  window.addEventListener('beforeprint', function(){ plots().forEach(function(g){ Plotly.relayout(g, {width: %d}); }); });
  window.addEventListener('afterprint', function(){ plots().forEach(function(g){ Plotly.relayout(g, {width: null}); }); });
})();
""" % PRINT_CHART_WIDTH_PX


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="na">n/a</span>'
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _generic(value: Any) -> str:
    """Any JSON-like value as nested HTML (used for the decision and estimate sections)."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_generic(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if not value:
            return '<span class="na">none</span>'
        return "<ul>" + "".join(f"<li>{_generic(v)}</li>" for v in value) + "</ul>"
    if isinstance(value, float):
        # large estimate figures (FLOPs, bytes, tokens) read better as 3,800,000,000 than 3800000000.000
        return _fmt(value, 3) if math.isnan(value) or abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return f"{value:,}"
    return _e(value)


def _raw_values(value: Any) -> str:
    """Every field as stored, folded away under the readable summary."""
    return f"<details><summary class=\"muted\">All values</summary>{_generic(value)}</details>"


def _decision_html(decision: dict) -> str:
    """The questionnaire for a reader: headline, scores, reasons, and each answer by its question's label."""
    from core.decision import OPTION_LABELS, QUESTIONS_BY_ID

    out: list[str] = []
    label = decision.get("label") or decision.get("recommendation")
    confidence = decision.get("confidence")
    if label:
        share = f" (confidence {confidence:.0%})" if isinstance(confidence, (int, float)) else ""
        out.append(f"<p><strong>Recommended: {_e(label)}{share}</strong></p>")
    scores = decision.get("scores")
    if isinstance(scores, dict) and scores:
        rows = "".join(f"<tr><th>{_e(OPTION_LABELS.get(k, k))}</th><td class=num>{_fmt_points(v)}</td></tr>" for k, v in scores.items())
        out.append(f"<table><thead><tr><th>Option</th><th>Points</th></tr></thead>{rows}</table>")
    reasons = decision.get("reasons")
    if isinstance(reasons, list) and reasons:
        out.append("<p><strong>Why</strong></p><ol>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ol>")
    if decision.get("sensitivity"):
        out.append(f"<p>{_e(decision['sensitivity'])}</p>")
    answers = decision.get("answers")
    if isinstance(answers, dict) and answers:
        rows = []
        for qid, value in answers.items():
            question = QUESTIONS_BY_ID.get(qid)
            choice = next((c.label for c in question.choices if c.value == value), value) if question else value
            rows.append(f"<tr><th>{_e(question.label if question else qid)}</th><td>{_e(choice)}</td></tr>")
        out.append(f"<table><thead><tr><th>Question</th><th>Answer</th></tr></thead>{''.join(rows)}</table>")
    return "".join(out) + _raw_values(decision)


def _fmt_points(value: Any) -> str:
    return f"{value:+.1f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _fmt(value)


def _estimate_html(estimate: dict) -> str:
    """The cost estimate's headline figures in words and units; every raw value folded underneath."""
    from core.estimate import human_bytes, human_seconds

    def get(*path: str) -> Any:
        value: Any = estimate
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    rows: list[tuple[str, str]] = []
    if get("model", "label") or get("hardware", "label"):
        rows.append(("Model and hardware", f"{get('model', 'label') or 'n/a'} on {get('hardware', 'label') or 'n/a'}"))
    for key in ("lora", "qlora"):
        total, available = get(key, "total_gb"), get(key, "available_gb")
        if number(total):
            verdict = "fits" if get(key, "fits") else ("not available here" if get(key, "supported") is False else "does not fit")
            of = f" of {available:.0f} GB" if number(available) else ""
            note = f". {get(key, 'note')}" if get(key, "note") else ""
            rows.append((f"{get(key, 'method') or key} memory", f"{total:.1f} GB{of}: {verdict}{note}"))
    if isinstance(get("training"), dict):
        for label, key in (("LoRA training time", "lora_seconds"), ("QLoRA training time", "qlora_seconds")):
            value = get("training", key)  # None in estimates saved when QLoRA was CUDA-only
            rows.append((label, human_seconds(value) if number(value) or value is None else str(value)))
    if number(get("rag", "index_bytes")):
        chunks = get("rag", "chunks")
        rows.append(("RAG index", f"{human_bytes(get('rag', 'index_bytes'))}" + (f", {chunks:,} chunks" if number(chunks) else "")))
    if number(get("rag", "parse_seconds")) and number(get("rag", "embed_seconds")):
        rows.append(("Parse and embed the documents", human_seconds(get("rag", "parse_seconds") + get("rag", "embed_seconds"))))
    if number(get("rag", "retrieval_ms")):
        rows.append(("Retrieval per question", f"{get('rag', 'retrieval_ms'):.0f} ms"))
    for label, key in (("Answer with retrieval", "rag_answer_seconds"), ("Answer without retrieval", "plain_answer_seconds")):
        if number(get("rag", key)):
            rows.append((label, human_seconds(get("rag", key))))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    notes = get("notes")
    out = f"<table>{body}</table>" if rows else ""
    if isinstance(notes, list) and notes:
        out += "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
    return (out + _raw_values(estimate)) if out else _generic(estimate)


def _as_dict(value: Any) -> Any:
    import dataclasses

    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _figure_html(fig, include_js: bool) -> str:
    import plotly.io as pio

    return '<div class="chart">' + pio.to_html(fig, include_plotlyjs=True if include_js else False, full_html=False,
                                               config={"displaylogo": False, "responsive": True}) + "</div>"


def find_run_folder(workspace: Workspace, adapter: str | None) -> Path | None:
    """The training run behind an adapter (runs/<id>/adapter -> runs/<id>), if it is one."""
    if not adapter:
        return None
    try:
        folder = resolve_adapter(workspace, adapter)
    except StudioError:
        return None
    run = folder.parent if folder and folder.name == "adapter" else None
    return run if run is not None and ((run / "config.json").exists() or (run / "progress.jsonl").exists()) else None


def pick_examples(rows: Sequence[dict], variant: str, count: int = 3) -> tuple[list[dict], list[dict]]:
    """Best and worst answers of a variant by token F1 (in-scope questions with a score)."""
    scored = [r for r in rows if r.get("variant") == variant and r.get("f1") is not None and not r.get("out_of_scope")]
    scored.sort(key=lambda r: (r["f1"], r.get("rouge_l") or 0), reverse=True)
    return scored[:count], list(reversed(scored[-count:])) if len(scored) > count else scored[::-1][:count]


def _answer_card(row: dict, css: str) -> str:
    cites = "".join(
        f"<li>[{_e(c['n'])}] {_e(c['document'])}, p. {_e(c['page'])} (score {_fmt(c.get('score'))})</li>" for c in row.get("citations") or []
    )
    return (
        f'<div class="card {css}"><div class="muted">{_e(VARIANT_LABELS.get(row["variant"], row["variant"]))} · '
        f'F1 {_fmt(row.get("f1"))} · {_fmt(row.get("total_s"), 1)} s</div>'
        f"<h3>{_e(row['question'])}</h3><pre>{_e(row.get('answer') or row.get('error') or '')}</pre>"
        f"<div class=\"muted\">Reference: {_e(' | '.join(row.get('answers') or []))}</div>"
        + (f"<div class=\"muted\">Sources:</div><ul class=\"muted\">{cites}</ul>" if cites else "")
        + "</div>"
    )


def build_report(workspace: Workspace, evaluation_id: str, decision: Any = None, estimate: Any = None,
                 title: str = "RAG vs Fine-Tuning: decision report") -> str:
    """The report as one HTML string."""
    record = get_evaluation(workspace, evaluation_id)
    summary = load_summary(workspace, evaluation_id)
    rows = load_results(workspace, evaluation_id)
    retrieval = load_retrieval(workspace, evaluation_id)
    config = read_json(workspace.evaluations / evaluation_id / "config.json", {}) or {}
    decision, estimate = _as_dict(decision), _as_dict(estimate)
    if decision is None:
        decision = read_json(workspace.evaluations / evaluation_id / "decision.json")
    if estimate is None:
        estimate = read_json(workspace.evaluations / evaluation_id / "estimate.json")
    board = summary.get("variants", {})
    parts: list[str] = []
    first_chart = True

    def chart(fig) -> str:
        nonlocal first_chart
        out = _figure_html(fig, include_js=first_chart)
        first_chart = False
        return out

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    adapter_run = find_run_folder(workspace, record.adapter)
    adapter_label = adapter_name(workspace, adapter_run.name) if adapter_run is not None else (record.adapter or "none")
    parts.append(
        f"<h1>{_e(title)}</h1><p class=\"muted\">Evaluation {_e(evaluation_id)} · knowledge base {_e(record.kb or 'none')} · "
        f"adapter {_e(adapter_label)} · questions from {_e(record.question_source)} · status {_e(record.status)} · "
        f"generated {generated}</p>"
    )
    parts.append("<nav>" + "".join(f'<a href="#{key}">{_e(label)}</a>' for key, label in SECTIONS.items()) + "</nav>")

    # -- decision
    body = (
        _decision_html(decision)
        if isinstance(decision, dict) and decision
        else _generic(decision)
        if decision
        else '<p class="na">No questionnaire answers were attached. Answer the questionnaire on the Decide page and export again.</p>'
    )
    parts.append(_section("decision", body))
    # -- estimate
    body = (_estimate_html(estimate) if isinstance(estimate, dict) else _generic(estimate)) if estimate else '<p class="na">No cost estimate was attached (the Decide page computes one).</p>'
    parts.append(_section("estimate", body))

    # -- scoreboard
    header = "<thead><tr><th>Variant</th>" + "".join(f"<th>{_e(c.label)}</th>" for c in SCOREBOARD_COLUMNS) + "</tr></thead>"
    body_rows = "".join(
        f"<tr><th>{_e(VARIANT_LABELS.get(v, v))}</th>"
        + "".join(f"<td class=num>{_fmt(m.get(c.key), c.digits)}</td>" for c in SCOREBOARD_COLUMNS) + "</tr>"
        for v, m in board.items()
    )
    parts.append(_section("scoreboard", f"<table>{header}{body_rows}</table>"
                          f"<p class=\"muted\">{summary.get('questions', 0)} questions × {len(board)} variants = "
                          f"{summary.get('answers', len(rows))} answers. n/a = not applicable or not measurable, never a score.</p>"))
    # -- charts
    parts.append(_section("charts", chart(charts.scoreboard_figure(summary)) + chart(charts.metric_bars(summary))))
    # -- retrieval
    r = summary.get("retrieval", {})
    k = r.get("k", 5)
    if r.get("questions_with_gold"):
        body = (f"<table><tr><th>Questions with a known source</th><th>hit@1</th><th>hit@{_e(k)}</th><th>MRR@{_e(k)}</th></tr>"
                f"<tr><td class=num>{_fmt(r.get('questions_with_gold'))}</td><td class=num>{_fmt(r.get('hit@1'))}</td>"
                f"<td class=num>{_fmt(r.get(f'hit@{k}'))}</td><td class=num>{_fmt(r.get('mrr'))}</td></tr></table>"
                "<p class=\"muted\">A hit is a retrieved chunk from the gold document that contains a reference answer or overlaps the gold passage.</p>")
    else:
        body = '<p class="na">No question had a known source document, so retrieval was not scored.</p>'
    parts.append(_section("retrieval", body))
    parts.append(_section("ragas", _ragas_body(workspace, evaluation_id)))
    # -- examples
    body = ""
    for variant in board:
        best, worst = pick_examples(rows, variant, 2)
        if not best:
            continue
        body += (f"<h3>{_e(VARIANT_LABELS.get(variant, variant))}</h3><div class=\"pair\"><div><div class=\"muted\">Best</div>"
                 + "".join(_answer_card(x, "best") for x in best)
                 + "</div><div><div class=\"muted\">Worst</div>" + "".join(_answer_card(x, "worst") for x in worst) + "</div></div>")
    oos = [x for x in rows if x.get("out_of_scope")]
    if oos:
        body += "<h3>Out-of-scope questions</h3><table><thead><tr><th>Question</th><th>Variant</th><th>Refused?</th><th>Answer</th></tr></thead>" + "".join(
            f"<tr><td>{_e(x['question'])}</td><td>{_e(VARIANT_LABELS.get(x['variant'], x['variant']))}</td>"
            f"<td>{'yes' if x.get('refusal') else 'no'}</td><td><pre>{_e(x.get('answer'))}</pre></td></tr>" for x in oos
        ) + "</table>"
    parts.append(_section("examples", body or '<p class="na">No scored answers yet.</p>'))
    # -- training
    run = find_run_folder(workspace, record.adapter)
    if run is not None:
        events = read_jsonl(run / "progress.jsonl")
        run_config = read_json(run / "config.json", {}) or {}
        body = f"<p class=\"muted\">Adapter “{_e(adapter_name(workspace, run.name))}” (run {_e(run.name)})</p>"
        if any("loss" in e for e in events):
            body += chart(charts.loss_figure(events))
        body += "<h3>Run settings</h3>" + (_generic(run_config) if run_config else '<p class="na">config.json missing</p>')
    elif record.adapter:
        body = f"<p>Adapter folder {_e(record.adapter)} (not a run in this workspace, so no loss curve or run settings).</p>"
    else:
        body = '<p class="na">No adapter was evaluated, so there is no training run to show.</p>'
    parts.append(_section("training", body))
    # -- latency
    lat = "".join(
        f"<tr><th>{_e(VARIANT_LABELS.get(v, v))}</th><td class=num>{_fmt(m.get('latency_p50_s'), 2)}</td><td class=num>{_fmt(m.get('latency_p95_s'), 2)}</td>"
        f"<td class=num>{_fmt(m.get('first_token_p50_s'), 2)}</td><td class=num>{_fmt(m.get('tokens_per_s'), 1)}</td></tr>"
        for v, m in board.items()
    )
    parts.append(_section("latency", "<table><thead><tr><th>Variant</th><th>p50 total s</th><th>p95 total s</th><th>p50 first token s</th><th>tokens/s</th></tr></thead>"
                          f"{lat}</table>" + (chart(charts.latency_figure(rows)) if rows else "")))
    # -- method
    hardware = config.get("hardware") or record.settings.get("hardware") or {}
    settings = config.get("settings") or {}
    body = (
        "<ul>"
        "<li><b>Exact match, token F1</b>: SQuAD v1.1 normalisation (lower-case; punctuation and the articles a/an/the removed; "
        "whitespace collapsed); best over all reference answers.</li>"
        "<li><b>ROUGE-L</b>: F-measure of the longest common token subsequence, same normalisation.</li>"
        "<li><b>Contains answer</b>: a normalised reference answer appears inside the answer (lenient for long answers).</li>"
        f"<li><b>Lexical support</b> (groundedness, not an entailment model): {_e(summary.get('groundedness_method', ''))}.</li>"
        f"<li><b>Unsupported claims</b> (lower is better): {_e(summary.get('unsupported_method') or 'not measured in this evaluation')}.</li>"
        f"<li><b>Format adherence</b>: {_e(summary.get('style_note') or 'not checked')}.</li>"
        "<li><b>Refusal</b>: on built-in out-of-scope questions, the answer says the documents do not cover it.</li>"
        "<li><b>Latency</b>: wall time per answer on this machine, generation streamed; tokens/s = new tokens / total seconds.</li>"
        "</ul>"
        f"<h3>Settings</h3>{_generic(settings)}<h3>Hardware</h3>{_generic(hardware)}"
        + (f"<h3>Engines (which engine and model answered each variant)</h3>{_generic(config['engines'])}" if config.get("engines") else "")
        + f"<p class=\"muted\">Elapsed {_fmt(summary.get('elapsed_s'), 1)} s · {_fmt(summary.get('questions_per_minute'), 2)} questions/minute "
        f"for all chosen variants.</p>"
    )
    parts.append(_section("method", body))
    # -- bottom line: measured, with the sample size and an interval, and set against the recommendation
    line = bottom_line(rows, decision if isinstance(decision, dict) else None)
    parts.append(_section("bottom", "<ul>" + "".join(f"<li>{_e(text)}</li>" for text in bottom_line_text(line)) + "</ul>"
                          '<p class="muted">Means with 95% intervals (Wilson for rates, normal approximation for scores); '
                          "n = answers that could be scored. A variant wins only when its interval lies above the others'.</p>"))
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body><main>{''.join(parts)}</main><script>{PRINT_JS}</script></body></html>"
    )


def _ragas_body(workspace: Workspace, evaluation_id: str) -> str:
    """The judge's scores with their NaN / timeout / error counts, or why there are none."""
    from core.judge import METRICS, judgement_rows, load_judgement, variant_label

    state = load_judgement(workspace, evaluation_id)
    if not state:
        return ('<p class="na">Not run. RAGAS needs a judge model behind an OpenAI-compatible endpoint (Ollama, llama.cpp '
                "server, vLLM); the Scoreboard tab or <code>python -m core judge</code> adds it. Every other number in this "
                "report is computed locally without one.</p>")
    judged = state["judge"]
    rows = "".join(
        f"<tr><th>{_e(variant_label(r['variant']))}</th>"
        f"<td>{_e(r['metric'].replace('_', ' '))}</td><td class=num>{_fmt(r['mean'])}</td>"
        + "".join(f"<td class=num>{_fmt(r[key])}</td>" for key in ("scored", "NaN", "timeouts", "errors", "not applicable"))
        + "</tr>"
        for r in judgement_rows(state)
    )
    status = "" if state.get("status") == "done" else f" · status {_e(state.get('status'))} ({state.get('done')} of {state.get('total')} scores)"
    model, url, timeout = _e(judged.get("model")), _e(judged.get("base_url")), _fmt(judged.get("timeout_s"), 0)
    return (
        f'<p class="muted">Judge {model} at {url} · timeout {timeout} s per score{status}</p>'
        "<table><thead><tr><th>Variant</th><th>Metric</th><th>Mean (scored only)</th><th>Scored</th><th>NaN</th><th>Timeouts</th>"
        f"<th>Errors</th><th>Not applicable</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="muted">The mean covers scored cells only; NaN, timeouts and errors are counted, never scored. '
        + " ".join(f"{_e(text)}." for text in METRICS.values()) + "</p>"
    )


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_e(SECTIONS[key])}</h2>{body}</section>'


def write_report(workspace: Workspace, evaluation_id: str, out: str | Path | None = None, decision: Any = None, estimate: Any = None) -> Path:
    """Write the report (atomically) to `out`, default workspace/reports/<evaluation id>.html."""
    path = Path(out) if out else workspace.reports / f"report-{evaluation_id}.html"
    atomic_write_text(path, build_report(workspace, evaluation_id, decision, estimate))
    return path
