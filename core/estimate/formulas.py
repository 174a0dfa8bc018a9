"""Cost and feasibility formulas: training memory (LoRA, QLoRA), training time, and the RAG index and latency.

These are planning numbers (within a factor of about 2), not promises; the Fine-tune and Evaluate pages measure
the real thing. The constants are in core/estimate/constants.py, the models and hardware in specs.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.errors import StudioError
from core.estimate.constants import (
    ACTIVATION_VALUES_PER_TOKEN_LAYER,
    ANSWER_TOKENS,
    BYTES_BF16,
    BYTES_FP32,
    BYTES_NF4,
    BYTES_PER_FLOAT,
    BYTES_PER_TRAINABLE,
    CHARS_PER_TOKEN,
    CHUNK_TOKENS,
    CPU_EMBED_CHUNKS_PER_S,
    CPU_OVERHEAD_GB,
    CPU_QLORA_SLOWDOWN,
    CPU_QUERY_EMBED_MS,
    CPU_SEARCH_MS_PER_100K,
    EMBEDDING_DIM,
    FLOPS_PER_PARAM_TOKEN_FULL,
    FLOPS_PER_PARAM_TOKEN_INFER,
    FLOPS_PER_PARAM_TOKEN_LORA,
    GB,
    GPU_OVERHEAD_GB,
    LOGIT_COPIES,
    LORA_DIMS_PER_HIDDEN,
    LORA_RANK,
    MINILM_PARAMS,
    PAGES_PER_DOC,
    PDF_PAGES_PER_S,
    PROMPT_OVERHEAD_TOKENS,
    QLORA_SLOWDOWN,
    TOKENS_PER_PAGE,
    TOP_K,
    USABLE_MEMORY_FRACTION,
)
from core.estimate.specs import Hardware, ModelSpec, get_hardware, model_for_params


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
    supported: bool = True  # every catalogue hardware runs both (QLoRA: bitsandbytes on CUDA and CPU; no MPS entry)
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
    qlora_seconds: float
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
    """Training memory for "LoRA" (bf16 base on GPU, fp32 on CPU) or "QLoRA" (NF4 base; compute in bf16 on GPU,
    fp32 on CPU, as the training worker runs it)."""
    compute_bytes = BYTES_BF16 if hw.is_gpu else BYTES_FP32
    # NF4 counted for every parameter, though the embeddings stay at the compute dtype: an underestimate that matters
    # for small models only (SmolLM2-135M on CPU: 159 MiB measured, bench/RESULTS_families.md, vs 66 MiB here)
    weight_bytes = BYTES_NF4 if method == "QLoRA" else compute_bytes
    # the pinned bitsandbytes trains 4-bit on CPU too (tests/test_qlora.py), at a measured cost in time
    note = "" if hw.is_gpu or method == "LoRA" else (
        f"QLoRA on CPU (bitsandbytes' CPU backend) saves memory, not time: measured {CPU_QLORA_SLOWDOWN:.2f}x slower than LoRA")
    return MemoryEstimate(
        method=method,
        weights_gb=model.params * weight_bytes / GB,
        trainable_gb=lora_trainable_params(model, inputs.lora_rank) * BYTES_PER_TRAINABLE / GB,
        activations_gb=activation_bytes(model, inputs, compute_bytes) / GB,
        overhead_gb=GPU_OVERHEAD_GB if hw.is_gpu else CPU_OVERHEAD_GB,
        available_gb=hw.memory_gb,
        note=note,
    )


def estimate_training(params: float, tokens: float, hw: Hardware) -> TrainingEstimate:
    """time = FLOPs / effective FLOP/s, with FLOPs = 4 N T for LoRA and 6 N T for full fine-tuning; QLoRA is LoRA
    times its slowdown (published on CUDA, measured here on CPU: see constants.py)."""
    lora = FLOPS_PER_PARAM_TOKEN_LORA * params * tokens
    full = FLOPS_PER_PARAM_TOKEN_FULL * params * tokens
    eff = hw.train_flops
    slowdown = QLORA_SLOWDOWN if hw.is_gpu else CPU_QLORA_SLOWDOWN
    return TrainingEstimate(lora, full, eff, lora / eff, lora / eff * slowdown, full / eff)


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
