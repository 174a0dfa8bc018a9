"""The loop guard (core.guards): a pure streaming filter, tested on text streams and engine event streams."""
from core.engines import StreamEvent
from core.guards import RepeatGuard, guard_events, guard_text, loops, no_repeat_ngram_bans, repeated_line_count

LOOPING_LINE = "Revenue was 2.2 billion USD.\n" * 5
LOOPING_PHRASE = "Increased risk of increased risk of increased risk of increased risk of failure to comply"
TAUGHT = "- Revenue was $13,507 million, up 20%.\n- Data Center revenue was $9,870 million.\n- Gaming fell 4%.\nRisks: export controls."


def pieces(text, size):
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_a_repeated_line_ends_the_answer_before_the_repeat_whatever_the_piece_size():
    for size in (1, 3, 7, len(LOOPING_LINE)):
        assert "".join(guard_text(pieces(LOOPING_LINE, size))) == "Revenue was 2.2 billion USD.\n"
        assert "".join(guard_text(pieces(LOOPING_PHRASE, size))) == "Increased risk of "


def test_a_normal_answer_and_the_taught_format_pass_unchanged():
    for text in (TAUGHT, "The the cat sat. It was very very very nice.", "- Yes.\n- Yes.\n- No."):
        for size in (1, 4, 1000):
            assert "".join(guard_text(pieces(text, size))) == text


def test_what_was_shown_is_never_taken_back():
    guard, shown = RepeatGuard(), ""
    for piece in pieces("Sales rose. Sales rose in Europe. Sales rose in Europe. Sales rose in Europe.", 2):
        shown += guard.feed(piece)
        assert guard.text.startswith(shown)
    shown += guard.finish()
    assert guard.stopped and shown == guard.answer == "Sales rose. Sales rose in Europe. "


def test_the_stream_below_is_closed_once_the_answer_loops():
    produced = []

    def engine():
        for piece in pieces(LOOPING_LINE * 20, 4):
            produced.append(piece)
            yield piece

    assert "".join(guard_text(engine())) == "Revenue was 2.2 billion USD.\n"
    assert len(produced) < 20  # stopped early, not after 100 lines


def test_engine_events_are_guarded_per_key_and_the_engine_stops_when_all_keys_end():
    sent = []

    def engine():
        for step in range(200):
            for key, text in (("rag", LOOPING_LINE), ("ft", LOOPING_PHRASE)):
                chunk = pieces(text * 3, 5)
                if step < len(chunk):
                    sent.append(key)
                    yield StreamEvent(key, "text", chunk[step])
        yield StreamEvent("rag", "done")
        yield StreamEvent("ft", "done")

    events = list(guard_events(engine(), ["rag", "ft"]))
    text = {k: "".join(e.text for e in events if e.key == k and e.kind == "text") for k in ("rag", "ft")}
    assert text == {"rag": "Revenue was 2.2 billion USD.\n", "ft": "Increased risk of "}
    assert [e.kind for e in events if e.key == "rag"][-1] == "done"
    assert len(sent) < 40  # closed long before the 2 x 18 pieces it would send


def test_guard_off_passes_everything():
    assert "".join(guard_text(pieces(LOOPING_LINE, 3), enabled=False)) == LOOPING_LINE


def test_loop_measures():
    assert repeated_line_count(LOOPING_LINE) == 5 and loops(LOOPING_LINE)
    assert loops(LOOPING_PHRASE) and not loops(TAUGHT) and repeated_line_count(TAUGHT) == 1


def test_no_repeat_ngram_bans_only_completions_of_the_answers_own_ngrams():
    assert no_repeat_ngram_bans([5, 6, 7, 5, 6], 3) == {7}
    assert no_repeat_ngram_bans([5, 6, 7], 3) == set()
    assert no_repeat_ngram_bans([5, 6, 7, 5, 6], 0) == set()


def test_an_abbreviation_does_not_end_a_sentence():
    text = ("- Northwind Circuits, Inc. designs chips for data centers\n- Gaming revenue was $2,215 million\n"
            "- Northwind Circuits, Inc. Revenue for the quarter was $13,507 million\nRisks: none stated.")
    assert "".join(guard_text(pieces(text, 3))) == text
    assert repeated_line_count("Apple Inc. sells phones. Apple Inc. sells Macs. Apple Inc. sells watches.") == 1
