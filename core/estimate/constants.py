"""Every constant of the cost and feasibility estimates, each with where it comes from.

CPU figures were measured on the project's 2-core machine (docs: DESIGN.md, "Figures measured"); GPU figures are
vendor peak numbers times a utilisation constant. Units: bytes, seconds, FLOP. GB means 1e9 bytes (GPU cards are
sold as "16GB" etc.).
"""
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
# QLoRA on CPU (bitsandbytes 0.50.2 CPU backend, NF4 base dequantised to fp32 per layer): LoRA 28.7 vs QLoRA 20.7
# training tokens/s on SmolLM2-135M, measured back to back by bench/qlora_cpu_bench.py (bench/RESULTS_families.md,
# "QLoRA on CPU", 2026-12-02). The absolute figures are under load; only the ratio is used: 28.7 / 20.7 = 1.386.
CPU_QLORA_SLOWDOWN = 28.7 / 20.7

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
QLORA_SLOWDOWN = 1.39  # on CUDA: QLoRA trained 39% slower than 16-bit LoRA (S. Raschka, "Practical Tips for Finetuning LLMs Using LoRA", 2023)

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
