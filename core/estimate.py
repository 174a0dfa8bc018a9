"""Cost and feasibility estimates: every formula and constant in one place.

Each constant says where it comes from. CPU figures were measured on the project's 2-core
machine (docs: DESIGN.md, "Figures measured"); GPU figures are vendor peak numbers times a
utilisation constant. These are planning numbers (within a factor of about 2), not promises;
the Fine-tune and Evaluate pages measure the real thing.

Units: bytes, seconds, FLOP. GB means 1e9 bytes (GPU cards are sold as "16GB" etc.).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.errors import StudioError

GB = 1e9

# ------------------------------------------------------------------ measured on the CPU machine
CPU_EMBED_CHUNKS_PER_S = 19.0  # MiniLM-L6, chunks of ~220 tokens, 2-core CPU (DESIGN.md)
CPU_QUERY_EMBED_MS = 15.0  # MiniLM, one query (DESIGN.md)
CPU_SEARCH_MS_PER_100K = 9.0  # FAISS IndexFlatIP, 100k vectors, 1 thread (DESIGN.md); flat search is linear in vectors
PDF_PAGES_PER_S = 75.0  # pypdf text extraction (DESIGN.md); CPU-bound on any machine
CPU_LORA_TOKENS_PER_S = 165.0  # LoRA on SmolLM2-135M fp32: 150-180 training tokens/s (DESIGN.md), midpoint
CPU_CALIBRATION_PARAMS = 135e6  # SmolLM2-135M, the model those tokens/s were measured on
CPU_PREFILL_TOKENS_PER_S = 360.0  # SmolLM2-135M prompt processing, fp32 (DESIGN.md)
CPU_DECODE_TOKENS_PER_S = 13.5  # SmolLM2-135M decode 12-15 tokens/s fp32 (DESIGN.md), midpoint

# ------------------------------------------------------------------ FLOP counting
FLOPS_PER_PARAM_TOKEN_FULL = 6.0  # forward 2 + backward 4 FLOP per parameter per token (Kaplan et al. 2020)
FLOPS_PER_PARAM_TOKEN_LORA = 4.0  # frozen base: no weight gradients, so forward 2 + input-gradient backward 2
FLOPS_PER_PARAM_TOKEN_INFER = 2.0  # forward only (prompt processing)

# CPU effective training FLOP/s, calibrated: 4 * 135e6 * 165 = 8.91e10 FLOP/s.
CPU_EFFECTIVE_TRAIN_FLOPS = FLOPS_PER_PARAM_TOKEN_LORA * CPU_CALIBRATION_PARAMS * CPU_LORA_TOKENS_PER_S
# CPU effective inference FLOP/s, calibrated: 2 * 135e6 * 360 = 9.72e10 FLOP/s (prompt processing).
CPU_EFFECTIVE_INFER_FLOPS = FLOPS_PER_PARAM_TOKEN_INFER * CPU_CALIBRATION_PARAMS * CPU_PREFILL_TOKENS_PER_S
# Decode reads every weight once per token, so it is memory-bandwidth bound:
# 135e6 params * 4 bytes (fp32) * 13.5 tokens/s = 7.29e9 bytes/s effective.
CPU_EFFECTIVE_BANDWIDTH = CPU_CALIBRATION_PARAMS * 4 * CPU_DECODE_TOKENS_PER_S
# Embedding on a GPU: MiniLM-L6 has 22.7M params; a 220-token chunk costs 2 * 22.7e6 * 220 FLOP.
MINILM_PARAMS = 22.7e6  # sentence-transformers/all-MiniLM-L6-v2 model card

# ------------------------------------------------------------------ GPU utilisation constants
GPU_MFU = 0.35  # model FLOP utilisation for LoRA training; 30-40% is typical for 7B-class bf16 runs (PaLM paper reports 46% at scale; small-batch LoRA runs lower)
GPU_INFER_MFU = 0.25  # prompt processing / embedding with small batches
GPU_BANDWIDTH_EFFICIENCY = 0.6  # decode achieves ~60% of peak memory bandwidth (vLLM/llama.cpp reports)
QLORA_SLOWDOWN = 1.39  # QLoRA trained 39% slower than 16-bit LoRA (S. Raschka, "Practical Tips for Finetuning LLMs Using LoRA", 2023)

# ------------------------------------------------------------------ memory constants
BYTES_BF16 = 2.0  # base weights for LoRA on CUDA
BYTES_FP32 = 4.0  # base weights for LoRA on CPU (DESIGN.md: CPU LoRA in fp32)
BYTES_NF4 = 4.127 / 8  # QLoRA NF4 with double quantisation: 4 + 0.127 bits/param (Dettmers et al. 2023, sec. 3)
BYTES_PER_TRAINABLE = 16.0  # fp32 weight 4 + fp32 gradient 4 + AdamW two moments 8
LORA_RANK = 16  # the "quality" preset's rank
# LoRA on q,k,v,o,gate,up,down: sum of (d_in + d_out) per layer ~ 21.5 * hidden for a Llama-shaped
# block (attention 4 * 2d, MLP 3 * (d + 3.5d)). Mistral-7B r=16 -> 45M (peft reports 41.9M with GQA).
LORA_DIMS_PER_HIDDEN = 21.5
ACTIVATION_VALUES_PER_TOKEN_LAYER = 17  # Korthikanti et al. 2022: 34*h bytes at 16-bit per token per layer, without attention scores (SDPA/flash)
LOGIT_COPIES = 2  # fp32 logits and their gradient (the cross-entropy over the vocabulary)
GPU_OVERHEAD_GB = 1.0  # CUDA context (~0.5 GB) + allocator fragmentation
CPU_OVERHEAD_GB = 1.0  # Python + torch + transformers resident set
USABLE_MEMORY_FRACTION = 0.9  # leave 10% headroom; the allocator fails before 100%
CPU_RAM_GB = 16.0  # a typical laptop; the project's build machine has 23 GB

# ------------------------------------------------------------------ RAG constants
TOKENS_PER_PAGE = 600  # ~450 words per dense page * 1.33 tokens/word
CHUNK_TOKENS = 220  # the chunk size the MiniLM figure was measured with (DESIGN.md)
CHARS_PER_TOKEN = 4.0  # English text, BPE tokenisers (OpenAI tokenizer rule of thumb)
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2
BYTES_PER_FLOAT = 4  # float32 vectors in FAISS
PAGES_PER_DOC = 10  # when only a document count is given
TOP_K = 4  # chunks put in the prompt
PROMPT_OVERHEAD_TOKENS = 60  # instructions + the question
ANSWER_TOKENS = 150  # a typical short answer


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    params: float
    layers: int
    hidden: int
    vocab: int


MODELS: dict[str, ModelSpec] = {  # from each model's config.json on the Hugging Face hub
    "phi-3-mini": ModelSpec("phi-3-mini", "Phi-3-mini (3.8B)", 3.8e9, 32, 3072, 32064),
    "mistral-7b": ModelSpec("mistral-7b", "Mistral-7B (7.2B)", 7.2e9, 32, 4096, 32000),
    "llama-3-8b": ModelSpec("llama-3-8b", "Llama-3-8B (8.0B)", 8.0e9, 32, 4096, 128256),
    "smollm2-135m": ModelSpec("smollm2-135m", "SmolLM2-135M", 135e6, 30, 576, 49152),
}


def custom_model(params: float) -> ModelSpec:
    """A model known only by its size: N ~ 12 * layers * hidden^2 (Kaplan et al. 2020) with 32
    layers gives hidden ~ sqrt(N / 384) (3.8e9 -> 3146, Phi-3's is 3072); vocabulary 32k."""
    if not params or params <= 0:
        raise StudioError("the parameter count must be a positive number, e.g. 3.8e9")
    return ModelSpec("custom", f"Custom ({params / 1e9:.2g}B)", float(params), 32, int(math.sqrt(params / (12 * 32))), 32000)


def model_from_config(model: str, workspace=None) -> ModelSpec:
    """Exact size and shape of any model from its config.json alone (never the weights).

    A local folder or the embedded default is read from disk; a hub id fetches (or reuses the cached)
    config.json only. The parameter count is exact: the architecture is built on PyTorch's meta device,
    which allocates no memory. An architecture transformers does not know is counted from the config's
    sizes (embeddings + per layer 4*h^2 attention, scaled for grouped KV heads, + 3*h*ffn MLP).
    """
    import json
    from pathlib import Path

    from core.families import read_config

    if workspace is not None:
        from core.models import GeneratorSpec, resolve_generator_path

        model_path = resolve_generator_path(GeneratorSpec(model_id=model), workspace)
    else:
        model_path = model
    config = read_config(model_path)
    text = config.get("text_config") or config
    hidden = int(text.get("hidden_size") or text.get("n_embd") or text.get("d_model") or 0)
    layers = int(text.get("num_hidden_layers") or text.get("n_layer") or text.get("num_layers") or 0)
    vocab = int(text.get("vocab_size") or 0)
    if not (hidden and layers and vocab):
        raise StudioError(f"The config of {model!r} has no hidden size / layer count / vocabulary size; enter the parameter count instead.")
    try:
        import tempfile

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "config.json").write_text(json.dumps(config))
            hf_config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(hf_config).parameters())
    except (ValueError, KeyError, OSError, ImportError):
        heads = int(text.get("num_attention_heads") or 1)
        kv = int(text.get("num_key_value_heads") or heads)
        ffn = int(text.get("intermediate_size") or 4 * hidden)
        per_layer = 2 * hidden * hidden + 2 * hidden * hidden * kv / heads + 3 * hidden * ffn
        params = vocab * hidden * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2) + layers * per_layer
    name = str(model).rstrip("/").split("/")[-1]
    return ModelSpec("config", f"{name} ({params / 1e9:.2g}B)" if params >= 1e9 else f"{name} ({params / 1e6:.0f}M)",
                     float(params), layers, hidden, vocab)


def model_for_params(params: float) -> ModelSpec:
    """The catalogue model of exactly this size, else a custom one."""
    for spec in MODELS.values():
        if spec.params == params:
            return spec
    return custom_model(params)


@dataclass(frozen=True)
class Hardware:
    key: str
    label: str
    memory_gb: float
    peak_flops: float  # dense bf16/fp16 tensor FLOP/s from the vendor sheet (sparsity figures halved)
    bandwidth_gbs: float  # memory bandwidth, GB/s
    is_gpu: bool = True

    @property
    def train_flops(self) -> float:
        return self.peak_flops * GPU_MFU if self.is_gpu else CPU_EFFECTIVE_TRAIN_FLOPS

    @property
    def infer_flops(self) -> float:
        return self.peak_flops * GPU_INFER_MFU if self.is_gpu else CPU_EFFECTIVE_INFER_FLOPS

    @property
    def decode_bandwidth(self) -> float:
        return self.bandwidth_gbs * GB * GPU_BANDWIDTH_EFFICIENCY if self.is_gpu else CPU_EFFECTIVE_BANDWIDTH


HARDWARE: dict[str, Hardware] = {
    # CPU: peak is the calibrated effective figure; memory is laptop RAM.
    "cpu": Hardware("cpu", "CPU (2 cores, measured)", CPU_RAM_GB, CPU_EFFECTIVE_TRAIN_FLOPS, CPU_EFFECTIVE_BANDWIDTH / GB, is_gpu=False),
    "t4": Hardware("t4", "NVIDIA T4 16GB", 16, 65e12, 320),  # T4 datasheet: 65 TFLOPS fp16, 320 GB/s
    "l4": Hardware("l4", "NVIDIA L4 24GB", 24, 121e12, 300),  # L4 datasheet: 242 TFLOPS bf16 with sparsity, 300 GB/s
    "a10g": Hardware("a10g", "NVIDIA A10G 24GB", 24, 70e12, 600),  # AWS G5 A10G: ~70 TFLOPS bf16 dense, 600 GB/s
    "a100-40gb": Hardware("a100-40gb", "NVIDIA A100 40GB", 40, 312e12, 1555),  # A100 datasheet: 312 TFLOPS bf16
    "a100-80gb": Hardware("a100-80gb", "NVIDIA A100 80GB", 80, 312e12, 2039),
    "h100": Hardware("h100", "NVIDIA H100 80GB (SXM)", 80, 989e12, 3350),  # H100 SXM: 989 TFLOPS bf16 dense
    "rtx4090": Hardware("rtx4090", "NVIDIA RTX 4090 24GB", 24, 165e12, 1008),  # Ada whitepaper: 165 TFLOPS fp16, fp32 accumulate
}


def get_hardware(name: str) -> Hardware:
    key = str(name).strip().lower()
    if key not in HARDWARE:
        raise StudioError(f"unknown hardware {name!r}; valid choices: {', '.join(HARDWARE)}")
    return HARDWARE[key]


@dataclass(frozen=True)
class EstimateInputs:
    params: float  # base model parameters
    train_tokens: float  # training-set size in tokens (one epoch)
    hardware: str = "cpu"
    docs: int = 0
    pages: int | None = None  # None: docs * PAGES_PER_DOC
    epochs: int = 1
    seq_len: int = 512  # tokens per training sequence
    micro_batch: int = 4  # sequences per step
    lora_rank: int = LORA_RANK

    def validate(self) -> "EstimateInputs":
        if self.params <= 0:
            raise StudioError("params must be positive, e.g. 3.8e9")
        if self.train_tokens < 0 or self.docs < 0 or (self.pages is not None and self.pages < 0):
            raise StudioError("train tokens, documents and pages must not be negative")
        if self.epochs < 1 or self.seq_len < 1 or self.micro_batch < 1 or self.lora_rank < 1:
            raise StudioError("epochs, sequence length, micro batch and LoRA rank must be at least 1")
        get_hardware(self.hardware)
        return self

    @property
    def total_pages(self) -> int:
        return self.pages if self.pages is not None else self.docs * PAGES_PER_DOC


@dataclass(frozen=True)
class MemoryEstimate:
    method: str  # "LoRA" | "QLoRA"
    weights_gb: float
    trainable_gb: float  # LoRA parameters + gradients + optimizer states
    activations_gb: float
    overhead_gb: float
    available_gb: float
    supported: bool = True
    note: str = ""

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.trainable_gb + self.activations_gb + self.overhead_gb

    @property
    def fits(self) -> bool:
        return self.supported and self.total_gb <= self.available_gb * USABLE_MEMORY_FRACTION


@dataclass(frozen=True)
class TrainingEstimate:
    lora_flops: float
    full_flops: float
    effective_flops: float
    lora_seconds: float
    qlora_seconds: float | None  # None where QLoRA cannot run (CPU)
    full_seconds: float


@dataclass(frozen=True)
class RagEstimate:
    pages: int
    chunks: int
    vector_bytes: float
    text_bytes: float
    parse_seconds: float
    embed_seconds: float
    retrieval_ms: float  # query embedding + vector search
    rag_answer_seconds: float  # retrieval + prompt with TOP_K chunks + decode
    plain_answer_seconds: float  # base or fine-tuned: question only + decode

    @property
    def index_bytes(self) -> float:
        return self.vector_bytes + self.text_bytes


@dataclass(frozen=True)
class Estimate:
    inputs: EstimateInputs
    model: ModelSpec
    hardware: Hardware
    lora: MemoryEstimate
    qlora: MemoryEstimate
    training: TrainingEstimate
    rag: RagEstimate
    notes: list[str] = field(default_factory=list)


def lora_trainable_params(model: ModelSpec, rank: int = LORA_RANK) -> float:
    """rank * sum(d_in + d_out) over the adapted linear layers (see LORA_DIMS_PER_HIDDEN)."""
    return rank * LORA_DIMS_PER_HIDDEN * model.hidden * model.layers


def activation_bytes(model: ModelSpec, inputs: EstimateInputs, bytes_per_value: float) -> float:
    """With gradient checkpointing: one saved hidden state per layer, one layer's working set,
    and the fp32 logits over the vocabulary (LOGIT_COPIES)."""
    tokens = inputs.micro_batch * inputs.seq_len
    checkpoints = tokens * model.hidden * model.layers * bytes_per_value
    working = tokens * model.hidden * ACTIVATION_VALUES_PER_TOKEN_LAYER * bytes_per_value
    logits = tokens * model.vocab * 4 * LOGIT_COPIES
    return checkpoints + working + logits


def estimate_memory(model: ModelSpec, hw: Hardware, inputs: EstimateInputs, method: str) -> MemoryEstimate:
    """Training memory for "LoRA" (bf16 base on GPU, fp32 on CPU) or "QLoRA" (NF4 base, CUDA only)."""
    if method == "QLoRA":
        weight_bytes, act_bytes = BYTES_NF4, BYTES_BF16
    else:
        weight_bytes = BYTES_BF16 if hw.is_gpu else BYTES_FP32
        act_bytes = weight_bytes
    supported = hw.is_gpu or method == "LoRA"
    return MemoryEstimate(
        method=method,
        weights_gb=model.params * weight_bytes / GB,
        trainable_gb=lora_trainable_params(model, inputs.lora_rank) * BYTES_PER_TRAINABLE / GB,
        activations_gb=activation_bytes(model, inputs, act_bytes) / GB,
        overhead_gb=GPU_OVERHEAD_GB if hw.is_gpu else CPU_OVERHEAD_GB,
        available_gb=hw.memory_gb,
        supported=supported,
        note="" if supported else "QLoRA needs CUDA: bitsandbytes 4-bit kernels do not run on CPU",
    )


def estimate_training(params: float, tokens: float, hw: Hardware) -> TrainingEstimate:
    """time = FLOPs / effective FLOP/s, with FLOPs = 4 N T for LoRA and 6 N T for full fine-tuning."""
    lora = FLOPS_PER_PARAM_TOKEN_LORA * params * tokens
    full = FLOPS_PER_PARAM_TOKEN_FULL * params * tokens
    eff = hw.train_flops
    return TrainingEstimate(lora, full, eff, lora / eff, lora / eff * QLORA_SLOWDOWN if hw.is_gpu else None, full / eff)


def estimate_rag(pages: int, params: float, hw: Hardware) -> RagEstimate:
    """Index size, ingest time, and per-question latency for retrieval + generation."""
    chunks = math.ceil(pages * TOKENS_PER_PAGE / CHUNK_TOKENS)
    if hw.is_gpu:
        chunks_per_s = hw.infer_flops / (FLOPS_PER_PARAM_TOKEN_INFER * MINILM_PARAMS * CHUNK_TOKENS)
        # a query on a GPU is launch-bound, not FLOP-bound: keep the CPU figure as a ceiling
        query_ms = min(CPU_QUERY_EMBED_MS, 5.0)
    else:
        chunks_per_s, query_ms = CPU_EMBED_CHUNKS_PER_S, CPU_QUERY_EMBED_MS
    retrieval_ms = query_ms + CPU_SEARCH_MS_PER_100K * chunks / 1e5  # FAISS runs on the CPU either way
    weight_bytes = BYTES_BF16 if hw.is_gpu else BYTES_FP32
    decode_s = ANSWER_TOKENS * params * weight_bytes / hw.decode_bandwidth

    def prefill(tokens: float) -> float:
        return FLOPS_PER_PARAM_TOKEN_INFER * params * tokens / hw.infer_flops

    rag_prompt = PROMPT_OVERHEAD_TOKENS + TOP_K * CHUNK_TOKENS
    return RagEstimate(
        pages=pages,
        chunks=chunks,
        vector_bytes=chunks * EMBEDDING_DIM * BYTES_PER_FLOAT,
        text_bytes=chunks * CHUNK_TOKENS * CHARS_PER_TOKEN,
        parse_seconds=pages / PDF_PAGES_PER_S,
        embed_seconds=chunks / chunks_per_s,
        retrieval_ms=retrieval_ms,
        rag_answer_seconds=retrieval_ms / 1000 + prefill(rag_prompt) + decode_s,
        plain_answer_seconds=prefill(PROMPT_OVERHEAD_TOKENS) + decode_s,
    )


def estimate(inputs: EstimateInputs, model: ModelSpec | None = None) -> Estimate:
    """Everything the Decide page shows beside the recommendation. `model`: exact shape (model_from_config), else by size."""
    inputs.validate()
    hw = get_hardware(inputs.hardware)
    model = model or model_for_params(inputs.params)
    tokens = inputs.train_tokens * inputs.epochs
    lora = estimate_memory(model, hw, inputs, "LoRA")
    qlora = estimate_memory(model, hw, inputs, "QLoRA")
    notes = []
    if not lora.fits and qlora.fits:
        notes.append("LoRA does not fit in memory; QLoRA does.")
    if not lora.fits and not qlora.fits:
        notes.append("Neither LoRA nor QLoRA fits: choose a smaller model or bigger hardware.")
    return Estimate(inputs, model, hw, lora, qlora, estimate_training(inputs.params, tokens, hw),
                    estimate_rag(inputs.total_pages, inputs.params, hw), notes)


# ------------------------------------------------------------------ presentation helpers

def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def memory_line(m: MemoryEstimate) -> str:
    verdict = "fits" if m.fits else ("not available" if not m.supported else "does NOT fit")
    line = (f"{m.method}: {m.total_gb:.1f} GB of {m.available_gb:.0f} GB ({verdict}): weights {m.weights_gb:.1f}, "
            f"adapter + optimizer {m.trainable_gb:.2f}, activations {m.activations_gb:.1f}, overhead {m.overhead_gb:.1f}")
    return line + (f". {m.note}" if m.note else "")


def summary_lines(est: Estimate) -> list[str]:
    """Plain-text lines for the CLI, the Markdown export and the page."""
    t, r = est.training, est.rag
    lines = [
        f"Model: {est.model.label}, {est.inputs.params:.3g} parameters; hardware: {est.hardware.label}",
        memory_line(est.lora),
        memory_line(est.qlora),
        f"Training {est.inputs.train_tokens * est.inputs.epochs:.3g} tokens: LoRA {human_seconds(t.lora_seconds)}, "
        f"QLoRA {human_seconds(t.qlora_seconds)}, full fine-tune {human_seconds(t.full_seconds)} "
        f"(at {t.effective_flops:.3g} FLOP/s effective)",
        f"RAG index: {r.pages} pages -> {r.chunks} chunks, {human_bytes(r.index_bytes)} "
        f"(vectors {human_bytes(r.vector_bytes)}, text {human_bytes(r.text_bytes)})",
        f"Ingest: parse {human_seconds(r.parse_seconds)}, embed {human_seconds(r.embed_seconds)}",
        f"Per question: retrieval {r.retrieval_ms:.0f} ms; RAG answer {human_seconds(r.rag_answer_seconds)}, "
        f"answer without retrieval {human_seconds(r.plain_answer_seconds)}",
    ]
    return lines + est.notes


def estimate_to_dict(est: Estimate) -> dict:
    from dataclasses import asdict

    data = asdict(est)
    for key, m in (("lora", est.lora), ("qlora", est.qlora)):
        data[key].update(total_gb=m.total_gb, fits=m.fits)
    data["rag"]["index_bytes"] = est.rag.index_bytes
    return data
