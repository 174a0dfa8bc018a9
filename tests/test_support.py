"""The support check behind the badges and the unsupported-claim rate (core.support): pure, no models."""
import math

import pytest

from core.support import SUPPORT_THRESHOLD, check_support, groundedness, highlight_spans, names

MDNA = ("Revenue for the first quarter of fiscal 2026 was $13,507 million, up 20% from $11,240 million a year earlier. "
        "Helena Marquez is the Chief Executive Officer.")
TABLE = "Condensed Consolidated Statements of Income (In millions, except per share data)\nRevenue 13,507 11,240\nNet income 3,118 2,479"
APPLE = "Total net sales were $94,836 million for the quarter, and Services net sales were $20,907 million."


def test_one_threshold_for_badges_and_scores():
    from core import evaluation
    assert evaluation.EvaluationSettings().support_threshold == SUPPORT_THRESHOLD == 0.6


def test_a_number_no_source_holds_is_reported_with_its_unit():
    report = check_support("NVIDIA's revenue was 2.2 billion USD.", [MDNA, TABLE])
    assert [c.text for c in report.unsupported] == ["2.2 billion", "NVIDIA"]
    assert not report.supported
    assert report.badge() == "not in the sources: 2.2 billion, NVIDIA"
    assert report.unsupported_rate == 1.0


def test_numbers_match_with_their_scale_including_a_table_under_an_in_millions_header():
    assert check_support("Revenue was $13,507 million.", [MDNA]).supported
    only_table = check_support("Revenue was $13,507 million.", [TABLE])
    assert only_table.supported and only_table.supporting == [1]
    assert check_support("Revenue was about $13.5 billion.", [MDNA]).supported  # a rounded restatement
    assert not check_support("Revenue was $13.6 billion.", [MDNA]).supported
    assert check_support("Revenue grew 20%.", [MDNA]).supported
    assert not check_support("Revenue grew 20 million.", [MDNA]).supported  # 20% is not 20 million


def test_a_dropped_unit_is_not_support():
    """$94,836 is a thousandth of the $94,836 million the filing states."""
    dropped = check_support("Total net sales were $94,836.", [APPLE])
    assert [c.text for c in dropped.unsupported] == ["$94,836"]
    assert dropped.badge() == "not in the sources: $94,836"
    assert check_support("Total net sales were $94,836 million.", [APPLE]).supported


def test_names_must_occur_and_acronyms_may_stand_for_them():
    assert check_support("Helena Marquez is the CEO.", [MDNA]).supported
    report = check_support("The CFO is Tim Cook.", [MDNA])
    assert [c.text for c in report.unsupported] == ["CFO", "Tim Cook"]
    # a capital that only starts the sentence is not a name
    assert names("Revenue was up. Services grew in Europe.") == ["Europe"]


def test_citations_narrow_the_check_to_the_cited_sources():
    report = check_support("Revenue was $13,507 million [2].", [MDNA, APPLE])
    assert report.checked_against == [2] and [c.text for c in report.unsupported] == ["$13,507 million"]
    assert check_support("Revenue was $13,507 million [1].", [MDNA, APPLE]).supported
    # citation numbers and list markers are not claims
    assert [c.text for c in check_support("1. Revenue grew 20% [1].", [MDNA]).claims] == ["20%"]


def test_refusals_and_empty_answers_make_no_claims():
    report = check_support("The documents in this knowledge base don't cover that question.", [MDNA])
    assert report.claims == [] and math.isnan(report.unsupported_rate) and not report.supported
    assert check_support("", [MDNA]).badge() == "No sentence of the answer is backed by the sources"


def test_wording_support_names_the_source_and_its_sentence():
    sources = ["The warranty on industrial pumps lasts five years from delivery. Pumps ship from Leeds.",
               "Service centres operate in Leeds and Lyon on weekdays."]
    report = check_support("The pump warranty lasts five years from delivery.", sources)
    assert report.supporting == [1] and report.sentences[1] == "The warranty on industrial pumps lasts five years from delivery."
    assert highlight_spans(sources[0], report.sentences[1]) == [
        ("The warranty on industrial pumps lasts five years from delivery.", True), (" Pumps ship from Leeds.", False)]
    assert highlight_spans("<b>x</b>", "not there") == [("<b>x</b>", False)]


def test_groundedness_toy_example():
    context = ["The Amazon rainforest covers seven million square kilometres across nine nations."]
    answer = "The rainforest covers seven million square kilometres [1]. It is mostly made of cheese."
    assert groundedness(answer, context) == pytest.approx(0.5)
    assert groundedness(answer, context, threshold=0.0001) == pytest.approx(0.5)
    assert math.isnan(groundedness(answer, []))
    assert math.isnan(groundedness("", context))


def test_evaluation_scores_the_unsupported_claim_rate_per_variant():
    from core import evaluation
    from core.knowledge import Hit
    from core.variants import Answer

    item = evaluation.QuestionItem("q1", "What was revenue?", ("$13,507 million",))
    given = [Hit(1, "10q.pdf", 5, 5, 0.8, MDNA)]
    rows = [
        evaluation.score_answer(item, Answer("rag", "Revenue was $13,507 million."), given, given, None, SUPPORT_THRESHOLD),
        evaluation.score_answer(item, Answer("base", "Revenue was 2.2 billion at Nvidia."), given, [], None, SUPPORT_THRESHOLD),
    ]
    assert rows[0]["unsupported"] == [] and rows[1]["unsupported"] == ["2.2 billion", "Nvidia"]
    board = evaluation.summarize(rows, [], ["base", "rag"], 5)["variants"]
    assert board["rag"]["unsupported_rate"] == 0.0 and board["base"]["unsupported_rate"] == 1.0
    labels = [row for row in evaluation.scoreboard_rows({"variants": board})]
    assert labels[0]["unsupported claims"] == 1.0


def _badges_page():
    from core.support import check_support
    from ui.support_view import render_source_text, render_support_badge

    source = "Net sales were $94,836 million. <b>Bold</b> [x](http://evil) claims."
    render_support_badge(check_support("Net sales were 2.2 billion.", [source]))
    good = check_support("Net sales were $94,836 million.", [source])
    render_support_badge(good)
    render_source_text(source, good.sentences.get(1))


def test_badges_and_highlight_render_escaped():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_badges_page, default_timeout=30).run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["Not in the sources: 2\\.2 billion"]
    assert "Supported by \\[1\\]" in at.caption[0].value
    shown = at.markdown[0].value
    assert shown.startswith(":orange-background[Net sales were \\$94,836 million\\.]")
    assert "\\<b\\>Bold\\</b\\>" in shown and "\\[x\\]\\(http://evil\\)" in shown  # literal, never HTML or a link
