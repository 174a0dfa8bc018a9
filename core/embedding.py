"""Sentence embeddings behind the Embedder seam: sentence-transformers on torch, or ONNX Runtime.

Why ONNX Runtime by hand rather than sentence-transformers' own `backend="onnx"`: that path needs
optimum-onnx, whose newest release (0.1.0) wants transformers < 4.58 (we pin 5.23); the OpenVINO
path pulls a CUDA torch 2.14 and transformers 5.5. onnxruntime itself installs cleanly.

- The model is exported once per workspace into `models/<name>.onnx-v1/` (a file lock, a staging
  folder renamed into place, a numerical check against torch), then runs without importing torch.
- `onnx-int8` is dynamic per-channel int8 on the MatMuls, chosen by default where the CPU has integer dot
  products: VNNI (`avx512_vnni`, `avx_vnni`, `amx_int8`) or, without them, AVX2 (/proc/cpuinfo, read at run
  time: the machine changes). On an AVX2-only EPYC int8 was 1.69x fp32 ONNX with hit@5 unchanged
  (bench/RESULTS_embed.md), where fp32 ONNX gained only 1.06x over torch.
- fp32 ONNX gives the same vectors as torch (cosine >= 0.99999, checked at export), so a knowledge
  base records `<model>` for both; int8 vectors differ slightly (cosine ~0.99), so a base built with
  them records `<model>@onnx-int8`, and queries and later ingests load the same backend.
- Batches are sorted by token length so little padding is computed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from core.errors import StudioError
from core.settings import Workspace
from core.storage import build_folder_once

log = logging.getLogger(__name__)

EXPORT_RECIPE = "onnx-v1"  # a new export or quantization recipe gets a new folder AND a new INT8 name: stored vectors name theirs
INT8 = "onnx-int8"
INT8_SUFFIX = "@" + INT8
BACKENDS = ("auto", "fp32", "torch", "onnx", INT8)


# ---------------------------------------------------------------- the seam
class Embedder(Protocol):
    """What a knowledge base needs from an embedding model. Real: SentenceTransformerEmbedder, OnnxEmbedder; tests: fakes."""

    model_id: str
    dimension: int

    def embed_documents(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


BACKEND_HELP = (
    "auto: int8 ONNX where the CPU has VNNI or AVX2, else fp32 ONNX, else torch; fp32: ONNX or torch (same vectors); "
    "torch: plain sentence-transformers; onnx: fp32 ONNX Runtime; onnx-int8: dynamic int8 ONNX Runtime"
)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_FLAGS = VNNI_FLAGS + ("avx2",)  # ONNX Runtime's u8s8 kernels: VNNI, else AVX2's vpmaddubsw (measured faster than fp32 on both)
_EXPORTABLE_MODULES = {"Transformer", "Pooling", "Normalize"}
_FUSABLE_TYPES = {"bert"}  # onnxruntime's transformer optimizer fuses attention/LayerNorm/GELU for these
BATCH_SIZE = 32


# ---------------------------------------------------------------- what a knowledge base records
def split_recorded_model(recorded: str) -> tuple[str, str]:
    """(model id, backend) from what a knowledge base records: `<model>` is fp32, `<model>@onnx-int8` int8."""
    if recorded.endswith(INT8_SUFFIX):
        return recorded[: -len(INT8_SUFFIX)], INT8
    return recorded, "fp32"


def recorded_model(model_id: str, backend: str) -> str:
    return model_id + INT8_SUFFIX if backend == INT8 else model_id


def spec_for_recorded(recorded: str, device: str = "auto"):
    """The EmbedderSpec that reproduces a knowledge base's vectors (same model, same precision)."""
    from core.models import EmbedderSpec

    model_id, backend = split_recorded_model(recorded)
    return EmbedderSpec(model_id=model_id, device=device, backend=backend)


# ---------------------------------------------------------------- the CPU, read at run time
def int8_pays(flags: frozenset[str] | None = None) -> bool:
    """Does dynamic int8 beat fp32 ONNX on this CPU? Measured on VNNI (2.9x torch) and AVX2-only (1.69x fp32 ONNX)
    x86 CPUs; elsewhere (ARM, old x86) untested, so fp32."""
    from core.machine import cpu_flags

    return bool(set(INT8_FLAGS) & (cpu_flags() if flags is None else flags))


def threads_for_load() -> int:
    """The cores nobody else is using (core.machine): 1 thread on shared cores measured 3-15x better than all."""
    from core.machine import torch_threads

    return torch_threads()


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def exportable_folder(model_id: str) -> Path | None:
    """The local folder of a model the ONNX export handles (Transformer + Pooling [+ Normalize]), else None."""
    from core.models import EmbedderSpec, resolve_embedder_path

    folder = Path(resolve_embedder_path(EmbedderSpec(model_id=model_id))).expanduser()
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    kinds = {str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules}
    if not kinds <= _EXPORTABLE_MODULES or not (folder / "tokenizer.json").exists():
        return None
    return folder


def resolve_backend(model_id: str, backend: str, flags: frozenset[str] | None = None) -> str:
    """The concrete backend (torch, onnx or onnx-int8) for a requested one."""
    if backend not in BACKENDS:
        raise StudioError(f"Unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "torch":
        return "torch"
    can_onnx = onnxruntime_available() and exportable_folder(model_id) is not None
    if backend in ("onnx", INT8) and not can_onnx:
        raise StudioError(
            f"The {backend} embedding backend needs onnxruntime (`make install`) and a local sentence-transformers folder "
            f"with tokenizer.json and mean/CLS pooling; {model_id!r} is not one. Use backend 'torch'."
        )
    if backend == "auto":
        return (INT8 if int8_pays(flags) else "onnx") if can_onnx else "torch"
    if backend == "fp32":
        return "onnx" if can_onnx else "torch"
    return backend


# ---------------------------------------------------------------- embedders
def _length_sorted(lengths: Sequence[int]) -> np.ndarray:
    return np.argsort(-np.asarray(lengths), kind="stable")


class SentenceTransformerEmbedder:
    """sentence-transformers (torch) behind the Embedder seam; unit-normalised, so inner product = cosine."""

    batch_size = BATCH_SIZE
    backend = "torch"

    def __init__(self, model: Any, model_id: str):
        self.model = model
        self.model_id = model_id
        self.dimension = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else model.get_sentence_embedding_dimension())
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        order = _length_sorted([len(text) for text in texts])  # whole-list sort: batches of alike lengths
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            with self._lock:
                batch = self.model.encode([texts[i] for i in rows], normalize_embeddings=True, convert_to_numpy=True)
            vectors[rows] = np.asarray(batch, dtype=np.float32)
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
        return np.asarray(vectors, dtype=np.float32)


class OnnxEmbedder:
    """An exported sentence-transformers model on ONNX Runtime; no torch at run time."""

    batch_size = BATCH_SIZE
    threads: int | None = None  # None: picked per call by the load average

    def __init__(self, folder: Path, model_id: str, backend: str):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.backend = backend
        self.model_id = recorded_model(model_id, backend)
        self.details = json.loads((self.folder / "export.json").read_text())
        self.dimension = int(self.details["dimension"])
        self._file = self.folder / ("model-int8.onnx" if backend == INT8 else "model.onnx")
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.no_padding()  # we pad per length-sorted batch
        self._tokenizer.enable_truncation(int(self.details["max_seq_length"]))
        self._pad_id = int(self.details["pad_token_id"])
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _session(self, threads: int):
        with self._lock:
            if threads not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep: shared cores
                self._sessions[threads] = ort.InferenceSession(str(self._file), options, providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def _run(self, encodings: list, session) -> np.ndarray:
        width = max(len(encoding.ids) for encoding in encodings)
        feeds = {name: np.full((len(encodings), width), self._pad_id if name == "input_ids" else 0, dtype=np.int64)
                 for name in self.details["inputs"]}
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            feeds["input_ids"][row, :length] = encoding.ids
            feeds["attention_mask"][row, :length] = 1
            if "token_type_ids" in feeds:
                feeds["token_type_ids"][row, :length] = encoding.type_ids
        return np.asarray(session.run(None, feeds)[0], dtype=np.float32)

    def embed_documents(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not len(texts):
            return vectors
        encodings = self._tokenizer.encode_batch(list(texts))
        order = _length_sorted([len(encoding.ids) for encoding in encodings])
        session = self._session(self.threads or threads_for_load())
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._run([encodings[i] for i in rows], session)
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)


# ---------------------------------------------------------------- export (once per workspace)
def _export_folder(workspace: Workspace, source: Path, model_id: str) -> Path:
    from core.models import EMBEDDED_EMBEDDER

    if model_id == EMBEDDED_EMBEDDER:
        name = "all-MiniLM-L6-v2"
    else:  # a local folder: its name plus a hash of its path, so two folders named alike never share
        name = f"{source.name}-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]}"
    return workspace.models / f"{name}.{EXPORT_RECIPE}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_PROBES = [
    "The Harbor Bridge opened in 1932 and carries eight lanes of traffic.",
    "Who designed the steel arch?",
    "Oil prices quadrupled during the 1973 crisis, and several governments rationed fuel for months.",
]


def export_onnx(workspace: Workspace, model_id: str) -> Path:
    """Export a local sentence-transformers model to ONNX (fp32 and int8) once; later calls return at once.

    A file lock makes concurrent processes (the app, a CLI, a test) export only once. The folder is
    built in a staging folder and renamed into place, so a crash leaves nothing half-written.
    """
    source = exportable_folder(model_id)
    if source is None:
        raise StudioError(f"{model_id!r} cannot be exported to ONNX; use the torch embedding backend.")
    target = _export_folder(workspace, source, model_id)

    def build(staging: Path) -> None:
        log.info("Exporting %s to ONNX in %s (one time, ~20 s)", model_id, target)
        _export_into(source, staging)

    return build_folder_once(target, "export.json", build)


def _export_into(source: Path, staging: Path) -> None:
    import onnx
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    model.eval()
    tokenizer = model.tokenizer
    # A padded batch, so the trace keeps the attention-mask path (an all-ones mask may be skipped).
    sample = tokenizer(_PROBES[:2], padding=True, return_tensors="pt")
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(dict(zip(inputs, tensors)))["sentence_embedding"]

    fp32 = staging / "model.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs} | {"sentence_embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side checks; the result is verified below
        # The TorchScript exporter: the dynamo one needs onnxscript and traces transformers 5 masks poorly.
        torch.onnx.export(Wrapped(model), tuple(sample[name] for name in inputs), str(fp32), dynamo=False,
                          input_names=inputs, output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17)
    config = json.loads((source / "config.json").read_text()) if (source / "config.json").exists() else {}
    if config.get("model_type") in _FUSABLE_TYPES:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=int(config.get("num_attention_heads", 0)),
                                         hidden_size=int(config.get("hidden_size", 0)), opt_level=1)
        fused.save_model_to_file(str(fp32))
    # Per-channel weights keep int8 cosines near 0.99 (per-tensor: 0.90 on README paragraphs).
    quantize_dynamic(str(fp32), str(staging / "model-int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")

    reference = model.encode(_PROBES, normalize_embeddings=True, convert_to_numpy=True)
    details = {
        "recipe": EXPORT_RECIPE,
        "source": str(source),
        "source_sha256": _sha256(source / "model.safetensors") if (source / "model.safetensors").exists() else None,
        "dimension": int(reference.shape[1]),
        "max_seq_length": int(model.max_seq_length),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "inputs": inputs,
        "versions": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "torch": torch.__version__},
        "int8": {"mode": "dynamic", "weights": "QInt8 per-channel", "ops": ["MatMul"]},
    }
    (staging / "export.json").write_text(json.dumps(details, indent=2))
    for backend, floor in (("onnx", 0.9999), (INT8, 0.97)):
        vectors = OnnxEmbedder(staging, "check", backend).embed_queries(_PROBES)
        agreement = float((vectors * reference).sum(axis=1).min())
        details[f"{backend}_min_cosine_vs_torch"] = round(agreement, 6)
        if agreement < floor:
            raise StudioError(f"The ONNX export of {source} disagrees with torch (cosine {agreement:.4f} < {floor}); "
                              "use the torch embedding backend.")
    (staging / "export.json").write_text(json.dumps(details, indent=2))


# ---------------------------------------------------------------- loading
_REGISTERED: dict[str, Callable[[], Any]] = {}  # model id -> factory: how a test's fake embedder enters


def register_embedder(model_id: str, factory: Callable[[], Any]) -> None:
    """Serve `model_id` from `factory()` instead of loading a model. A fake enters here, under the model id a knowledge
    base records, so every page, command and job that loads that knowledge base's embedder gets it."""
    _REGISTERED[model_id] = factory


def unregister_embedder(model_id: str) -> None:
    _REGISTERED.pop(model_id, None)


def load_sentence_embedder(spec=None, workspace: Workspace | None = None):
    """An embedding model behind the Embedder seam (default: the embedded MiniLM, backend auto).

    `spec.model_id` may be what a knowledge base recorded (`<model>@onnx-int8`): that fixes the backend.
    ONNX exports live in `workspace.models` (default: the current workspace).
    """
    from core.models import EmbedderSpec, load_embedder

    spec = spec or EmbedderSpec()
    model_id, recorded_backend = split_recorded_model(spec.model_id)
    if model_id in _REGISTERED:
        return _REGISTERED[model_id]()
    requested = INT8 if recorded_backend == INT8 else getattr(spec, "backend", "auto")
    on_cpu = spec.device == "cpu" or (spec.device == "auto" and not _cuda_visible())
    backend = resolve_backend(model_id, requested) if on_cpu or requested == INT8 else "torch"
    if backend == "torch":
        return SentenceTransformerEmbedder(load_embedder(EmbedderSpec(model_id=model_id, device=spec.device)), model_id)
    if workspace is None:
        from core.settings import get_workspace

        workspace = get_workspace()
    folder = export_onnx(workspace, model_id)
    log.info("Embedding with %s on ONNX Runtime (%s)", model_id, backend)
    return OnnxEmbedder(folder, model_id, backend)


def _cuda_visible() -> bool:
    """CUDA without importing torch: a GPU machine keeps torch (fast there); CPU machines use ONNX."""
    return Path("/proc/driver/nvidia/version").exists() and os.environ.get("CUDA_VISIBLE_DEVICES", "0") != ""
