"""Moved to the `core.engines` package (base, registry, transformers, llamacpp, openai); kept so old imports work."""
from core.engines import *  # noqa: F401,F403
from core.engines.base import check_keys  # noqa: F401
from core.engines.transformers import BASE_ADAPTER, TorchEngine, check_adapter_folder, cpu_threads, fast_cpu_dtype  # noqa: F401
