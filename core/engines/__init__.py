"""Generation engines behind one interface (base.py), chosen by spec string (registry.py).

- transformers.py: transformers + peft in-process, a batch that mixes adapters;
- torch_cache.py: that batch's key/value cache (prefill by length group into one left-padded buffer);
- llamacpp.py: llama.cpp in-process (llama-cpp-python), a GGUF file and GGUF LoRA adapters;
- openai.py: any OpenAI-compatible /v1/chat/completions server, streamed over SSE;
- serve.py: files and commands to serve a fine-tune with Ollama, vLLM or llama.cpp's server.
"""
from core.engines.base import (  # noqa: F401
    GenerationEngine,
    GenerationRequest,
    GenerationResult,
    RoutedEngine,
    StreamEvent,
    collect,
    engine_label,
    generate_many,
    generate_text,
    guarded_stream,
    stream_text,
)
from core.engines.registry import (  # noqa: F401
    AUTO,
    ENGINE_HELP,
    EngineSpec,
    engine_kinds,
    open_engine,
    parse_engine_spec,
    register_engine,
    resolve_kind,
    unregister_engine,
)
