"""The relevance gate (`relevant`) with the term check, on toy data and the fake embedder."""
import pytest

from core.retrieval import Hit, RetrievalSettings, question_terms, relevant, search, search_many
from tests.conftest import TOY_DOCS  # noqa: F401  (the toy_kb fixture's documents)

NO_CHECK = RetrievalSettings(min_score=0.05, term_check=False)
CHECK = RetrievalSettings(min_score=0.05, term_check=True)


def hit(score: float, missing: tuple[str, ...] = ()) -> Hit:
    return Hit(1, "d.pdf", 1, 1, score, "text", 1, missing)


@pytest.mark.parametrize(
    "question, names, numbers",
    [
        ("Who designed the Harbor Bridge?", ("harbor", "bridge"), ()),
        ("When did the bridge open in 1932?", (), ("1932",)),
        ("Harbor Bridge: who painted it in 1932 and 1932?", ("bridge",), ("1932",)),  # first word skipped, repeats once
        ("what is the wi-fi password", (), ()),  # lower case: nothing to check
        ("How many members sit in the Welsh Senedd?", ("welsh", "senedd"), ()),
        ("1871: who planted the Tree?", ("tree",), ("1871",)),  # a leading number still counts
    ],
)
def test_question_terms(question, names, numbers):
    assert question_terms(question) == (names, numbers)


def test_gate_drops_hits_with_missing_terms_only_when_checking():
    hits = [hit(0.8, ("netflix",)), hit(0.6), hit(0.2)]
    assert relevant(hits, RetrievalSettings(min_score=0.3, term_check=True)) == [hits[1]]
    assert relevant(hits, RetrievalSettings(min_score=0.3, term_check=False)) == hits[:2]
    assert relevant([], CHECK) == []


def test_unknown_name_refuses_even_a_close_match(toy_kb, workspace, fake_embedder):
    # Shares "the", "bridge", "opened" with harbor.txt, so the plain cosine gate lets it through.
    question = "When was the Golden Gate Bridge opened?"
    hits = search(workspace, toy_kb, question, fake_embedder, CHECK)
    assert relevant(hits, NO_CHECK), "without the check the near miss passes (the gap this gate closes)"
    assert relevant(hits, CHECK) == []
    assert all(set(h.missing_terms) == {"golden", "gate"} for h in hits)


def test_known_names_and_numbers_still_pass(toy_kb, workspace, fake_embedder):
    hits = search(workspace, toy_kb, "Who was the chief engineer of the Harbor Bridge?", fake_embedder, CHECK)
    passed = relevant(hits, CHECK)
    assert passed and passed[0].document == "harbor.txt" and passed[0].missing_terms == ()
    hits = search(workspace, toy_kb, "What happened to the Moreau family tree in 1871?", fake_embedder, CHECK)
    assert [h.document for h in relevant(hits, CHECK)][:1] == ["orchard.txt"]


def test_a_number_must_be_in_the_chunk_itself(toy_kb, workspace, fake_embedder):
    # 1932 is in the knowledge base (harbor.txt) but not in any orchard chunk, 1999 nowhere.
    hits = search(workspace, toy_kb, "Which apple varieties did the orchard grow in 1932?", fake_embedder, CHECK)
    assert all(h.document == "harbor.txt" for h in relevant(hits, CHECK))
    assert any(h.document == "orchard.txt" and h.missing_terms == ("1932",) for h in hits)
    hits = search(workspace, toy_kb, "How many apples did the orchard grow in 1999?", fake_embedder, CHECK)
    assert relevant(hits, CHECK) == [] and relevant(hits, NO_CHECK)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_check_works_in_every_mode_and_can_be_switched_off(toy_kb, workspace, fake_embedder, mode):
    questions = ["When was the Golden Gate Bridge opened?", "Who painted the Harbor Bridge?"]
    checked = search_many(workspace, toy_kb, questions, fake_embedder, RetrievalSettings(min_score=0.05, mode=mode))
    plain = search_many(workspace, toy_kb, questions, fake_embedder, RetrievalSettings(min_score=0.05, mode=mode, term_check=False))
    assert [[h.chunk_id for h in hs] for hs in checked] == [[h.chunk_id for h in hs] for hs in plain]  # same ranking
    assert all(h.missing_terms == () for hs in plain for h in hs)
    assert relevant(checked[0], RetrievalSettings(min_score=0.05, mode=mode)) == []
    assert relevant(checked[1], RetrievalSettings(min_score=0.05, mode=mode))


def test_evaluation_settings_pass_the_check_through():
    from core.evaluation import EvaluationSettings

    assert EvaluationSettings().retrieval.term_check is True
    assert EvaluationSettings(term_check=False).retrieval.term_check is False
