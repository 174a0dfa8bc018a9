"""The openai engine against a stub server on 127.0.0.1: streaming, and every fault in its own column."""
from __future__ import annotations

import socket
import time

import pytest

from core.compare import run_comparison, stream_comparison
from core.engines import GenerationRequest, RoutedEngine, generate_many, open_engine, parse_engine_spec
from core.engines.openai import OpenAIEngine, RemoteSettings
from core.errors import StudioError
from core.generation import DecodingSettings
from tests.openai_stub import OpenAIStub

FAST = RemoteSettings(connect_timeout_s=1.0, read_timeout_s=1.0, retries=2, backoff_s=0.05)
SETTINGS = DecodingSettings(max_new_tokens=20)
MESSAGES = [{"role": "user", "content": "Hello?"}]


def engine(url: str, model: str, **kwargs) -> OpenAIEngine:
    return OpenAIEngine(url, model, settings=kwargs.pop("settings", FAST), **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_spec_strings_and_validation():
    spec = parse_engine_spec("openai:http://127.0.0.1:11434/v1", model="llama3.2")
    assert (spec.kind, spec.target, spec.model) == ("openai", "http://127.0.0.1:11434/v1", "llama3.2")
    assert spec.to_string() == "openai:http://127.0.0.1:11434/v1"
    assert parse_engine_spec("openai", model="m", base_url="http://h:1/v1").target == "http://h:1/v1"
    assert parse_engine_spec("llamacpp:/models/x.gguf").target == "/models/x.gguf"
    assert parse_engine_spec(None).kind == "auto"
    with pytest.raises(StudioError, match="model name"):
        parse_engine_spec("openai:http://127.0.0.1:1/v1")
    with pytest.raises(StudioError, match="base URL"):
        parse_engine_spec("openai", model="m")
    with pytest.raises(StudioError, match="Unknown engine 'vllm'"):
        parse_engine_spec("vllm")
    with pytest.raises(StudioError, match=".gguf"):
        parse_engine_spec("llamacpp:/models/x.bin")


def test_streams_an_answer_and_records_usage():
    with OpenAIStub() as stub:
        result = generate_many(engine(stub.url, "ok"), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
        assert result.error is None and result.text == "Answer from ok"
        assert result.stats.new_tokens == 3 and result.stats.prompt_tokens == 11 and result.stats.first_token_s is not None
        sent = stub.requests[0]
        assert sent["stream"] is True and sent["messages"] == MESSAGES and sent["max_tokens"] == 20 and sent["temperature"] == 0.0
        assert sent["repeat_penalty"] == 1.0  # servers default to 1.1; the Studio's measured default is 1.0


def test_an_api_that_rejects_the_sampling_extras_is_asked_again_without_them():
    with OpenAIStub(strict=True) as stub:
        result = generate_many(engine(stub.url, "ok"), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
        assert result.error is None and result.text == "Answer from ok"
        assert "repeat_penalty" in stub.requests[0] and "repeat_penalty" not in stub.requests[1]


def test_faults_stay_in_their_own_column_and_nothing_hangs():
    with OpenAIStub() as stub:
        models = ["ok", "missing", "silent", "malformed", "half", "flaky"]
        routes = {m: engine(stub.url, m) for m in models}
        routed = RoutedEngine(routes, routes["ok"])
        started = time.perf_counter()
        results = generate_many(routed, [GenerationRequest(m, MESSAGES) for m in models], SETTINGS)
        elapsed = time.perf_counter() - started
        assert results["ok"].text == "Answer from ok" and results["ok"].error is None
        assert results["flaky"].text == "Answer from flaky" and stub.served["flaky"] == 2  # 503, then a retry that worked
        assert "no model 'missing'" in results["missing"].error and "ollama pull missing" in results["missing"].error
        assert "sent nothing for 1 s" in results["silent"].error
        assert "malformed stream" in results["malformed"].error and results["malformed"].text == "Partly"
        assert "ended before the answer finished" in results["half"].error and results["half"].text == "Cut short"
        assert elapsed < 4, f"a fault held up the others ({elapsed:.1f} s)"


def test_server_down_is_a_clear_error_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    started = time.perf_counter()
    result = generate_many(engine(url, "ok"), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
    assert "Could not reach the server" in result.error and "Is it running?" in result.error
    assert time.perf_counter() - started < 3  # 3 attempts with 0.05 / 0.1 s backoff, no hang


def test_api_key_from_the_environment_only_in_the_header(monkeypatch, caplog):
    secret = "sk-test-SECRET-1234"
    with OpenAIStub(key=secret) as stub:
        monkeypatch.delenv("STUDIO_OPENAI_API_KEY", raising=False)
        refused = generate_many(engine(stub.url, "ok"), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
        assert "401" in refused.error and "STUDIO_OPENAI_API_KEY" in refused.error
        monkeypatch.setenv("STUDIO_OPENAI_API_KEY", "wrong-key")
        wrong = generate_many(engine(stub.url, "ok"), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
        assert "was refused" in wrong.error and "wrong-key" not in wrong.error
        monkeypatch.setenv("STUDIO_OPENAI_API_KEY", secret)
        with caplog.at_level("DEBUG"):
            spec = parse_engine_spec("openai", model="ok", base_url=stub.url)
            answered = generate_many(open_engine(spec, None), [GenerationRequest("a", MESSAGES)], SETTINGS)["a"]
        assert answered.text == "Answer from ok"
        assert stub.headers[-1]["Authorization"] == f"Bearer {secret}"
        assert secret not in caplog.text and secret not in repr(spec) and secret not in str(spec.describe())


def test_cancel_stops_a_remote_stream():
    with OpenAIStub() as stub:
        stream = engine(stub.url, "endless").stream_many([GenerationRequest("a", MESSAGES)], DecodingSettings(max_new_tokens=4096))
        pieces = [next(stream) for _ in range(3)]
        assert all(p.kind == "text" for p in pieces)
        started = time.perf_counter()
        stream.close()  # what a Streamlit rerun or a closed tab does to the generator
        assert time.perf_counter() - started < 2
        assert stub.endless_closed.wait(3), "the server kept streaming after the client cancelled"


def test_compare_column_on_a_server_next_to_a_local_engine(fake_engine):
    """A served column has no local adapter: its model is the fine-tune; the other columns keep the local engine."""
    with OpenAIStub() as stub:
        remote = engine(stub.url, "ok")
        comparison = run_comparison(fake_engine, "When?", ["base", "finetuned"], adapter="/runs/x/adapter",
                                    settings=SETTINGS, engines={"finetuned": remote})
        tuned, base = comparison.answers["finetuned"], comparison.answers["base"]
        assert tuned.text == "Answer from ok" and (tuned.engine, tuned.model, tuned.adapter) == ("openai", "ok", None)
        assert base.engine == "fake" and base.model == "echo-1"
        assert "adapter" not in str(stub.requests[-1])  # nothing about a local folder went to the server
        broken = run_comparison(fake_engine, "When?", ["base", "rag"], hits=[], settings=SETTINGS,
                                engines={"base": engine(stub.url, "missing")})
        assert "404" in broken.answers["base"].error and broken.answers["rag"].note  # rag had nothing relevant: no model


def test_a_local_adapter_sent_to_a_server_is_refused_in_its_column():
    with OpenAIStub() as stub:
        result = generate_many(engine(stub.url, "ok"), [GenerationRequest("a", MESSAGES, adapter="/runs/x/adapter")], SETTINGS)["a"]
        assert "cannot load a local LoRA folder" in result.error and not stub.requests


def test_stream_comparison_routes_a_column_to_a_server(fake_engine):
    """Compare's streaming path (the page's) with one column on a server: both columns finish, each from its engine."""
    with OpenAIStub() as stub:
        comparison, events = stream_comparison(fake_engine, "When?", ["base", "rag"], hits=[], settings=SETTINGS,
                                               engines={"base": engine(stub.url, "ok")})
        kinds = [(e.key, e.kind) for e in events]
        assert ("base", "done") in kinds and comparison.answers["base"].text == "Answer from ok"
        assert comparison.answers["rag"].note and not fake_engine.batches  # nothing relevant: the local engine was not asked
