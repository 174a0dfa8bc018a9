from core.ask import GroundedAnswer
from core.retrieval import Hit


def hit(text, n=1):
    return Hit(n, f"doc{n}.pdf", 1, 1, 0.5, text, n)


def test_attribution_picks_the_source_whose_words_the_answer_uses():
    sources = [hit("The warranty on industrial pumps lasts five years from delivery.", 1),
               hit("Service centres operate in Leeds and Lyon on weekdays.", 2)]
    answer = "The pump warranty lasts five years from delivery. Centres in Leeds and Lyon handle service."
    assert GroundedAnswer("q", answer, sources).supporting_numbers() == [1, 2]
    assert GroundedAnswer("q", "Bananas are yellow and grow in tropical climates.", sources).supporting_numbers() == []


def test_model_citations_are_read_and_bounded():
    answer = GroundedAnswer("q", "Five years [1], see also [7].", [hit("five years warranty")])
    assert answer.cited_numbers() == [1]
    assert answer.to_dict()["sources"][0]["number"] == 1
