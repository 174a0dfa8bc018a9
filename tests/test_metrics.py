"""Metrics against hand-computed values."""
import math

import pytest

from core import metrics


def test_squad_normalisation():
    assert metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.normalize_answer("An apple, a day.") == "apple day"
    assert metrics.normalize_answer("theory") == "theory"  # 'the' only as a whole word


@pytest.mark.parametrize(
    "prediction, references, em, f1",
    [
        ("the Eiffel Tower", ["Eiffel Tower"], 1.0, 1.0),
        ("Eiffel", ["Eiffel Tower"], 0.0, 2 * 1.0 * 0.5 / 1.5),  # P=1, R=1/2 -> 2/3
        ("It was in Paris, France", ["Paris"], 0.0, 2 * 0.2 * 1.0 / 1.2),  # 5 tokens: it was in paris france -> P=1/5, R=1 -> 1/3
        ("nothing relevant", ["Paris", "France"], 0.0, 0.0),
        ("France", ["Paris", "France"], 1.0, 1.0),  # best over references
    ],
)
def test_exact_match_and_f1(prediction, references, em, f1):
    assert metrics.exact_match(prediction, references) == em
    assert metrics.token_f1(prediction, references) == pytest.approx(f1)


def test_f1_hand_computed():
    # pred: "in paris france" (3), ref: "paris" -> P=1/3, R=1 -> F1 = 0.5
    assert metrics.token_f1("In Paris, France.", "Paris") == pytest.approx(0.5)


def test_rouge_l():
    # pred tokens: police killed gunman ; ref: police kill gunman -> LCS = 2 (police, gunman)
    # P = 2/3, R = 2/3 -> F = 2/3
    assert metrics.rouge_l("police killed the gunman", "the police kill the gunman") == pytest.approx(2 / 3)
    assert metrics.lcs_length("a b c d".split(), "a c d".split()) == 3
    assert metrics.rouge_l("x y", "z") == 0.0
    assert metrics.rouge_l("same words here", ["other", "same words here"]) == pytest.approx(1.0)


def test_hit_at_k_and_mrr_on_toy_ranking():
    # Four questions: first relevant at rank 1, 3, none, 2
    ranks = [1, 3, None, 2]
    assert metrics.hit_at_k(ranks, 1) == pytest.approx(0.25)
    assert metrics.hit_at_k(ranks, 2) == pytest.approx(0.5)
    assert metrics.hit_at_k(ranks, 5) == pytest.approx(0.75)
    assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert metrics.mrr(ranks, k=2) == pytest.approx((1 + 0 + 0 + 1 / 2) / 4)
    assert metrics.first_relevant_rank([False, False, True, True]) == 3
    assert math.isnan(metrics.hit_at_k([], 5))


def test_chunk_relevance():
    assert metrics.chunk_is_relevant("The tower is in Paris.", "Paris.pdf", "Paris.pdf", ["paris"])
    assert not metrics.chunk_is_relevant("The tower is in Paris.", "Rome.pdf", "Paris.pdf", ["paris"])
    assert metrics.chunk_is_relevant("The tower is in Paris.", "Paris (2).pdf", "paris.pdf", ["Paris"])
    passage = "one two three four five six seven eight nine ten eleven"
    assert metrics.chunk_is_relevant("zero one two three four five six seven eight", "d.pdf", "d.pdf", ["absent"], passage)
    assert not metrics.chunk_is_relevant("zero one two three", "d.pdf", "d.pdf", ["absent"], "nothing alike at all here")


def test_refusal_detection():
    from core.generation import NO_CONTEXT_ANSWER

    assert metrics.is_refusal(NO_CONTEXT_ANSWER)
    assert metrics.is_refusal("The documents do not say who won.")
    assert metrics.is_refusal("This is not mentioned in the sources.")
    assert metrics.is_refusal("The actor who won the 2087 championship was not provided.")
    assert not metrics.is_refusal("The capital of France is Paris.")


def test_shape_adherence():
    bullets = "- one\n- two\n- three"
    assert metrics.answer_shape(bullets) == "bullets:3"
    assert metrics.answer_shape("Just prose.") == "prose"
    shape = metrics.majority_shape([bullets, "- a\n- b\n- c", "prose here"])
    assert shape == "bullets:3"
    assert metrics.shape_adherence("- x\n- y\n- z", shape) == 1.0
    assert metrics.shape_adherence("x", shape) == 0.0
    assert math.isnan(metrics.shape_adherence("x", None))


def test_percentile_and_mean():
    assert metrics.percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert metrics.percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert metrics.mean([1.0, float("nan"), 3.0, None]) == 2.0
    assert math.isnan(metrics.mean([]))
