"""Cost and feasibility estimates for the Decide page: `constants` (every number, with its source), `specs` (models
and hardware), `formulas` (memory, training time, RAG index and latency), `summary` (text and dict).

Planning numbers (within a factor of about 2), not promises; the Fine-tune and Evaluate pages measure the real
thing. The public names are re-exported here (`from core.estimate import estimate`) for scripts and old callers.
"""
from core.estimate.constants import *  # noqa: F401,F403  every constant, e.g. CPU_LORA_TOKENS_PER_S
from core.estimate.formulas import (  # noqa: F401
    Estimate,
    EstimateInputs,
    MemoryEstimate,
    RagEstimate,
    TrainingEstimate,
    activation_bytes,
    estimate,
    estimate_memory,
    estimate_rag,
    estimate_training,
    lora_trainable_params,
)
from core.estimate.specs import (  # noqa: F401
    HARDWARE,
    MODELS,
    Hardware,
    ModelSpec,
    custom_model,
    get_hardware,
    model_for_params,
    model_from_config,
)
from core.estimate.summary import estimate_to_dict, human_bytes, human_seconds, memory_line, summary_lines  # noqa: F401
