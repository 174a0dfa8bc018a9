"""Compare: planning, exports and demo questions (fast, fake engine) and the real engine (slow)."""
from __future__ import annotations

import pytest

from core.compare import (
    NO_ADAPTER_MESSAGE,
    export_html,
    export_markdown,
    load_demo_questions,
    parse_variants,
    plan_comparison,
    run_comparison,
    save_demo_questions,
)
from core.engines import GenerationRequest, StreamEvent
from core.errors import StudioError
from core.generation import NO_CONTEXT_ANSWER, DecodingSettings, GenerationStats
from core.knowledge import Hit
from core.settings import get_workspace

HITS = [
    Hit(1, "oil.pdf", 3, 3, 0.71, "The 1973 oil crisis began in October 1973 with an OAPEC embargo.", 1),
    Hit(2, "oil.pdf", 4, 5, 0.55, "By March 1974 the price of oil had risen from US$3 to nearly $12.", 2),
]


class FakeEngine:
    """Plugs in where TorchEngine does; answers with what it was asked so tests can see the prompt."""

    name = "fake"

    def __init__(self):
        self.batches: list[list[GenerationRequest]] = []

    def stream_many(self, requests, settings):
        self.batches.append(list(requests))
        for request in requests:
            if request.adapter and "broken" in request.adapter:
                yield StreamEvent(request.key, "error", "adapter broken", GenerationStats())
                continue
            stats = GenerationStats(prompt_tokens=10, new_tokens=3, first_token_s=0.1, total_s=0.3)
            yield StreamEvent(request.key, "text", f"answer<{request.key}>", stats)
            yield StreamEvent(request.key, "done", "", stats)


def test_parse_variants_aliases_and_order():
    assert parse_variants("hybrid,ft,base") == ["base", "finetuned", "hybrid"]
    assert parse_variants(["rag"]) == ["rag"]
    with pytest.raises(StudioError):
        parse_variants("bogus")
    with pytest.raises(StudioError):
        parse_variants("")


def test_rag_and_hybrid_prompts_contain_the_same_retrieved_chunks():
    answers, requests = plan_comparison("When did it begin?", ["base", "rag", "finetuned", "hybrid"], HITS, adapter="/x/adapter")
    by_key = {r.key: r for r in requests}
    rag_prompt = by_key["rag"].messages[-1]["content"]
    assert all(hit.text in rag_prompt for hit in HITS) and "[1]" in rag_prompt and "[2]" in rag_prompt
    # hybrid: the adapter's training shape (instruction, blank line, passage) around the same retrieved sentences,
    # the one sharing most words with the question first
    hybrid_prompt = by_key["hybrid"].messages[-1]["content"]
    assert hybrid_prompt.startswith("When did it begin?\n\nThe 1973 oil crisis began") and all(hit.text in hybrid_prompt for hit in HITS)
    assert by_key["hybrid"].messages[0] == by_key["rag"].messages[0]  # same system voice
    for variant in ("rag", "hybrid"):
        assert answers[variant].hits == HITS
    _, old = plan_comparison("When did it begin?", ["hybrid"], HITS, adapter="/x/adapter", hybrid_prompt="rag")
    assert old[0].messages == by_key["rag"].messages
    for variant in ("base", "finetuned"):
        assert HITS[0].text not in by_key[variant].messages[-1]["content"]
    assert by_key["base"].adapter is None and by_key["rag"].adapter is None
    assert by_key["finetuned"].adapter == "/x/adapter" and by_key["hybrid"].adapter == "/x/adapter"


def test_without_adapter_the_tuned_columns_say_how_to_get_one():
    engine = FakeEngine()
    comparison = run_comparison(engine, "Q?", ["base", "rag", "finetuned", "hybrid"], hits=HITS, adapter=None)
    assert comparison.answers["finetuned"].error == NO_ADAPTER_MESSAGE
    assert "Fine-tune page" in comparison.answers["hybrid"].error
    assert [r.key for r in engine.batches[0]] == ["base", "rag"]  # one batch for the runnable columns


def test_nothing_relevant_retrieved_means_no_invented_answer():
    engine = FakeEngine()
    comparison = run_comparison(engine, "Q?", ["base", "rag", "hybrid"], hits=[], adapter="/x/adapter")
    assert comparison.answers["rag"].text == NO_CONTEXT_ANSWER
    assert comparison.answers["hybrid"].text == NO_CONTEXT_ANSWER
    assert [r.key for r in engine.batches[0]] == ["base"]


def test_broken_adapter_fails_only_its_columns():
    comparison = run_comparison(FakeEngine(), "Q?", ["base", "rag", "finetuned", "hybrid"], hits=HITS, adapter="/broken/adapter")
    assert comparison.answers["base"].text == "answer<base>" and comparison.answers["rag"].text == "answer<rag>"
    assert comparison.answers["finetuned"].error and comparison.answers["hybrid"].error


def test_exports_escape_user_text():
    comparison = run_comparison(FakeEngine(), "<script>alert(1)</script>?", ["base", "rag"], hits=HITS)
    comparison.answers["base"].text = "<b>bold</b> & co"
    page = export_html([comparison])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    markdown = export_markdown([comparison])
    assert "## Q: <script>alert(1)</script>?" in markdown and "oil.pdf, p. 3" in markdown and "tok/s" in markdown


def test_demo_questions_persist_per_knowledge_base(tmp_path):
    workspace = get_workspace(tmp_path)
    default = load_demo_questions(workspace, "kb1")
    assert default
    save_demo_questions(workspace, "kb1", ["  One? ", "", "Two?"])
    assert load_demo_questions(get_workspace(tmp_path), "kb1") == ["One?", "Two?"]
    assert load_demo_questions(workspace, "kb2") == default


def test_find_adapters_and_resolve(tmp_path):
    from core.adapters import find_adapters, resolve_adapter
    from tests.tune_support import record_run

    workspace = get_workspace(tmp_path)
    assert find_adapters(workspace) == []
    folder = workspace.runs / "run-1" / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj", "v_proj"]}')
    assert find_adapters(workspace) == []  # a folder without a completed run is not offered
    record_run(workspace, "run-1")
    (infos,) = find_adapters(workspace)
    assert infos.run_id == "run-1" and infos.rank == 4 and infos.target_modules == ("q_proj", "v_proj")
    assert resolve_adapter(workspace, "run-1") == folder.resolve()
    with pytest.raises(StudioError, match="run-1"):
        resolve_adapter(workspace, "nope")


def test_core_compare_never_imports_streamlit():
    import subprocess
    import sys

    code = "import sys, core.compare, core.engines, core.engines.registry, core.engines.openai, core.engines.llamacpp, core.adapters, core.commands.compare; print('streamlit' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ---------------------------------------------------------------- the real engine (slow)
SETTINGS = DecodingSettings(max_new_tokens=12, temperature=0.0)
QUESTION = "When did the 1973 oil crisis begin?"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from compare_fixtures import make_broken_adapter, prepare_workspace

    from core.engines import open_engine
    from core.models import GeneratorSpec

    workspace = prepare_workspace(tmp_path_factory.mktemp("compare-ws"), with_kb=False)
    # fp32 pinned: the auto choice (bf16 on a quiet AMX CPU, fp32 when busy) depends on the machine's load,
    # and the fixture's random adapter can decode to whitespace only in bf16.
    engine = open_engine("transformers", workspace, GeneratorSpec(dtype="float32"))
    adapter = str(workspace.runs / "fixture-run" / "adapter")
    return workspace, engine, adapter, str(make_broken_adapter(workspace))


def reference_answer(loaded, messages, settings) -> str:
    """Plain transformers `generate` on a model that never saw peft: the yardstick for "base is the base model"
    (test-only; the app generates only through core.engines)."""
    import torch

    tokenizer = loaded.tokenizer
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = loaded.model.generate(**inputs, max_new_tokens=settings.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                    top_k=None, repetition_penalty=settings.repetition_penalty, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_real_variants_deterministic_base_is_plain_model(real):
    """The one "base column is really the base model" test: Compare and Evaluate share this generation path."""
    from core.evaluation import EngineVariantRunner
    from core.generation import build_messages
    from core.models import GeneratorSpec, load_generator

    workspace, engine, adapter, _ = real
    variants = ["base", "rag", "finetuned", "hybrid"]
    first = run_comparison(engine, QUESTION, variants, hits=HITS, adapter=adapter, settings=SETTINGS)
    second = run_comparison(engine, QUESTION, variants, hits=HITS, adapter=adapter, settings=SETTINGS)
    for variant in variants:
        answer = first.answers[variant]
        assert answer.error is None and answer.text, variant
        assert answer.text == second.answers[variant].text, f"{variant} is not deterministic at temperature 0"
        assert answer.stats.new_tokens > 0 and answer.stats.first_token_s is not None and answer.stats.tokens_per_s > 0

    # The base column is the plain model: a fresh copy that never saw peft, same dtype, same prompt.
    plain = load_generator(GeneratorSpec(dtype=engine.loaded.dtype), workspace)
    assert not any("lora" in name for name, _ in plain.model.named_parameters())
    expected = reference_answer(plain, build_messages(QUESTION), SETTINGS)
    alone = run_comparison(engine, QUESTION, ["base"], adapter=adapter, settings=SETTINGS)
    assert engine.adapters, "the adapter should be loaded into the engine while base runs"
    assert alone.answers["base"].text == expected
    assert first.answers["base"].text == expected  # also inside the mixed four-row batch

    # The adapter changes the answer; hybrid uses both the adapter and the context.
    assert first.answers["finetuned"].text != first.answers["base"].text
    assert first.answers["hybrid"].text != first.answers["rag"].text
    assert first.answers["hybrid"].text != first.answers["finetuned"].text
    rag_plain = reference_answer(plain, build_messages(QUESTION, HITS), SETTINGS)
    assert first.answers["rag"].text == rag_plain
    # Evaluate's runner goes through the same engine: its base answer is the plain model's too.
    evaluated = EngineVariantRunner(engine, adapter, SETTINGS).answer_all(QUESTION, ["base", "finetuned"], [])
    assert evaluated["base"].text == expected and evaluated["base"].engine == "transformers"
    assert evaluated["finetuned"].text == first.answers["finetuned"].text


@pytest.mark.slow
def test_real_broken_adapter_errors_in_its_column_only(real):
    _, engine, _, broken = real
    comparison = run_comparison(engine, QUESTION, ["base", "rag", "finetuned", "hybrid"], hits=HITS, adapter=broken, settings=SETTINGS)
    assert comparison.answers["base"].text and comparison.answers["base"].error is None
    assert comparison.answers["rag"].text and comparison.answers["rag"].error is None
    for variant in ("finetuned", "hybrid"):
        assert comparison.answers[variant].error and "could not be loaded" in comparison.answers[variant].error
    missing = run_comparison(engine, QUESTION, ["base", "finetuned"], adapter="/nonexistent/adapter", settings=SETTINGS)
    assert missing.answers["base"].text and "does not exist" in missing.answers["finetuned"].error


@pytest.mark.slow
def test_real_compare_many_batches_questions(real):
    from core.compare import compare_many

    _, engine, adapter, _ = real
    questions = [QUESTION, "What was the price of oil in March 1974?"]
    results = compare_many(
        engine, questions, ["base", "rag", "finetuned", "hybrid"], retrieve=lambda qs: [HITS for _ in qs], adapter=adapter, settings=SETTINGS
    )
    assert [c.question for c in results] == questions
    single = run_comparison(engine, QUESTION, ["rag"], hits=HITS, settings=SETTINGS)
    assert results[0].answers["rag"].text  # batched with 7 other rows; padding may shift bf16 numerics slightly
    assert all(a.text and a.error is None for c in results for a in c.answers.values())
    assert single.answers["rag"].text


def test_hybrid_facts_put_the_question_s_best_sentences_first():
    from core.compare import select_facts

    hits = [Hit(1, "10q.pdf", 3, 3, 0.6, "Services 20,907 19,821 5 %. Revenue for the quarter was $13,507 million, up 20%."),
            Hit(2, "10q.pdf", 9, 9, 0.5, "Helena Marquez is the Chief Executive Officer of the company.")]
    facts = select_facts("What was revenue for the quarter?", hits)
    assert facts[0] == (1, "Revenue for the quarter was $13,507 million, up 20%.")
    assert {number for number, _ in facts} == {1, 2}
    assert select_facts("What was revenue?", hits, max_chars=60) == [(1, "Revenue for the quarter was $13,507 million, up 20%.")]


def test_columns_are_checked_against_their_sources_and_base_against_what_retrieval_found():
    class Says:
        name = "fake"

        def stream_many(self, requests, settings):
            for request in requests:
                text = "Prices rose to nearly $12 by March 1974." if "rag" in request.key else "Prices rose to 2.2 billion in Ruritania."
                yield StreamEvent(request.key, "text", text, GenerationStats())
                yield StreamEvent(request.key, "done", "", GenerationStats())

    comparison = run_comparison(Says(), "How high did prices go?", ["base", "rag"], hits=HITS)
    assert comparison.answers["rag"].support().supported and comparison.answers["rag"].support().supporting == [2]
    base = comparison.answers["base"].support()
    assert [c.text for c in base.unsupported] == ["2.2 billion", "Ruritania"]
    assert comparison.to_dict()["answers"][0]["support"]["unsupported"] == ["2.2 billion", "Ruritania"]
    assert "not in the sources: 2.2 billion, Ruritania" in export_markdown([comparison])
