"""Model families: what differs between Llama/SmolLM, Phi-3, Qwen2, Mistral and Gemma 2, as data.

One row per family: LoRA target sets, chat-template quirks, pad/end-of-turn tokens and llama.cpp support.
A model whose architecture is not in the table still trains: its targets come from its own nn.Linear
layers (every one except the output head), and its chat template is probed instead of trusted.

Sources: each family's modeling_*.py in transformers 5.x (layer names), its chat_template in
tokenizer_config.json on the hub (quirks), and llama.cpp's convert_hf_to_gguf.py (GGUF support).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.errors import StudioError

log = logging.getLogger(__name__)

TARGET_SETS = ("all linear", "attention")
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]  # config.json "model_type" values
    attention_targets: tuple[str, ...]
    all_linear_targets: tuple[str, ...]
    system_role: bool = True  # False: the template raises on a system turn, so it is folded into the first user turn
    chat_style: str = "chatml"  # Ollama TEMPLATE used when the tokenizer's own template is not recognised
    end_of_turn: tuple[str, ...] = ()  # tokens that end an answer besides eos (generation must stop on them)
    pad_candidates: tuple[str, ...] = ()  # used as pad when the tokenizer has none, before falling back to eos
    gguf: bool = True  # llama.cpp's convert_hf_to_gguf.py converts this architecture
    notes: str = ""

    def targets(self, which: str) -> tuple[str, ...]:
        if which not in TARGET_SETS:
            raise StudioError(f"Unknown target set {which!r}; choose {' or '.join(TARGET_SETS)}.")
        return self.attention_targets if which == "attention" else self.all_linear_targets


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "Llama / SmolLM", ("llama",), _ATTENTION, _ATTENTION + _MLP,
        end_of_turn=("<|im_end|>", "<|eot_id|>", "<|end_of_text|>"), pad_candidates=("<|finetune_right_pad_id|>", "<unk>"),
        notes="SmolLM2 uses ChatML, Llama 3 header tokens; both come from the tokenizer's own template.",
    ),
    ModelFamily(
        "Phi-3", ("phi3",), ("qkv_proj", "o_proj"), ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
        chat_style="phi3", end_of_turn=("<|end|>",),
        notes="q/k/v and gate/up are fused Linear layers (qkv_proj, gate_up_proj); answers end with <|end|>.",
    ),
    ModelFamily(
        "Qwen2 / Qwen2.5", ("qwen2",), _ATTENTION, _ATTENTION + _MLP, end_of_turn=("<|im_end|>",),
        notes="ChatML; q/k/v carry a bias (LoRA leaves it frozen); Qwen2.5 adds a default system turn when none is given.",
    ),
    ModelFamily(
        "Mistral", ("mistral",), _ATTENTION, _ATTENTION + _MLP, chat_style="mistral", pad_candidates=("<unk>",),
        notes="[INST] template; v0.1/v0.2 templates have no system role and v0.3 puts it in the last user turn, so it is folded into the first.",
        system_role=False,
    ),
    ModelFamily(
        "Gemma 2", ("gemma2",), _ATTENTION, _ATTENTION + _MLP, system_role=False, chat_style="gemma",
        end_of_turn=("<end_of_turn>",),
        notes="The template raises on a system turn: it is folded into the first user turn. The assistant role is 'model'.",
    ),
)
UNKNOWN = ModelFamily("Other (derived)", (), (), (), notes="Targets derived from the model's own Linear layers.")


def family_for(model_type: str | None) -> ModelFamily:
    """The table row for a config's model_type; UNKNOWN (derived targets) when it is not listed."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    return UNKNOWN


# ---------------------------------------------------------------- LoRA targets
def _linear_types() -> tuple:
    import torch

    try:  # GPT-2 style models use transformers' Conv1D (a transposed Linear), which peft also adapts
        from transformers.pytorch_utils import Conv1D

        return (torch.nn.Linear, Conv1D)
    except ImportError:  # pragma: no cover
        return (torch.nn.Linear,)


def linear_layers(model) -> dict[str, list[str]]:
    """Short name -> full module paths of every Linear layer except the output head (works on the meta device)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    types = _linear_types()
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, types) and module is not head and not name.endswith("lm_head"):
            found.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return found


def in_out_features(module) -> tuple[int, int]:
    """(in, out) of a Linear or a Conv1D (whose weight is stored transposed)."""
    if hasattr(module, "in_features"):
        return int(module.in_features), int(module.out_features)
    rows, cols = module.weight.shape
    return int(rows), int(cols)


def derive_targets(layers: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """Target sets for an architecture not in the table, from its own Linear layers.

    "all linear" is every Linear but the head (what peft's "all-linear" means); "attention" is the
    ones that live under an attention block, or all of them when the names do not say.
    """
    every = tuple(sorted(layers))
    attention = tuple(sorted(short for short, paths in layers.items() if any("attn" in p.lower() or "attention" in p.lower() for p in paths)))
    return {"all linear": every, "attention": attention or every}


def target_sets(model_type: str | None, layers: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """The family's target sets when the model really has those layers, else sets derived from the model."""
    family = family_for(model_type)
    derived = derive_targets(layers)
    result = {}
    for which in TARGET_SETS:
        listed = family.targets(which) if family is not UNKNOWN else ()
        if listed and set(listed) <= set(layers):
            result[which] = listed
        else:
            if listed:  # a variant of a known family with other names: never refuse it
                log.warning("%s: the table's %s targets %s are not all in the model; using %s", family.name, which, listed, derived[which])
            result[which] = derived[which]
    return result


# ---------------------------------------------------------------- tokenizer quirks
FALLBACK_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


def fold_system(messages: list[dict]) -> list[dict]:
    """Merge system turns into the first user turn (for templates without a system role)."""
    system = [m["content"] for m in messages if m.get("role") == "system" and m.get("content")]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    prefix = "\n\n".join(system)
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{prefix}\n\n{message['content']}"
            return rest
    return [{"role": "user", "content": prefix}] + rest


def _template_accepts_system(tokenizer) -> bool:
    probe = [{"role": "system", "content": "SYSTEM-PROBE-7"}, {"role": "user", "content": "u"}]
    try:
        text = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
    except Exception:  # jinja2 raise_exception("System role not supported") and the like
        return False
    return "SYSTEM-PROBE-7" in text  # a template that silently drops the system turn is folded too


def prepare_tokenizer(tokenizer, model_type: str | None):
    """Apply the family's quirks in place: a chat template, system-role folding, and a pad token.

    The fold wraps this tokenizer's apply_chat_template, so every caller (training, every engine,
    dataset building) sends the same text without knowing the family.
    """
    family = family_for(model_type)
    if not getattr(tokenizer, "chat_template", None):
        log.warning("The tokenizer has no chat template; using a plain '### Role:' template")
        tokenizer.chat_template = FALLBACK_TEMPLATE
    if not getattr(tokenizer, "_studio_folds_system", False) and (not family.system_role or not _template_accepts_system(tokenizer)):
        original = tokenizer.apply_chat_template

        def apply_chat_template(conversation, *args, **kwargs):
            if conversation and isinstance(conversation[0], (list, tuple)):
                conversation = [fold_system(list(c)) for c in conversation]
            else:
                conversation = fold_system(list(conversation))
            return original(conversation, *args, **kwargs)

        tokenizer.apply_chat_template = apply_chat_template
        tokenizer._studio_folds_system = True
    if tokenizer.pad_token is None:
        vocab = tokenizer.get_vocab()
        pad = next((t for t in family.pad_candidates if t in vocab and t != tokenizer.eos_token), None)
        # pad == eos is safe here: the collators mask pads by position (attention mask, labels -100), never by id
        tokenizer.pad_token = pad or tokenizer.eos_token
    return tokenizer


def load_tokenizer(path: str, model_type: str | None = None):
    """AutoTokenizer with the family's quirks applied (model_type read from config.json when not given)."""
    from transformers import AutoTokenizer

    if model_type is None:
        model_type = read_config(path).get("model_type")
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path), model_type)


def stop_token_ids(tokenizer, model_type: str | None, generation_eos=None) -> list[int]:
    """eos ids to stop generation on: the model's own, the tokenizer's eos, and the family's end-of-turn tokens."""
    ids: list[int] = []
    for value in (generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]) + [tokenizer.eos_token_id]:
        if value is not None and int(value) not in ids:
            ids.append(int(value))
    vocab = tokenizer.get_vocab()
    for token in family_for(model_type).end_of_turn:
        if token in vocab and vocab[token] not in ids:
            ids.append(vocab[token])
    return ids


# ---------------------------------------------------------------- base identity
_VOLATILE_KEYS = {"transformers_version", "_name_or_path", "torch_dtype", "dtype", "use_cache", "quantization_config",
                  "_attn_implementation_autoset", "architectures", "name_or_path"}


def read_config(path: str) -> dict:
    """config.json of a local folder or a hub id (the hub cache; config only, never the weights)."""
    folder = Path(path).expanduser()
    if (folder / "config.json").exists():
        try:
            return json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except ValueError as error:  # a half-written or hand-edited file: say which one
            raise StudioError(f"{folder / 'config.json'} is not valid JSON: {error}") from error
    try:  # the hub's raw config.json (cached), so a hub id and a downloaded folder of one model hash the same
        from transformers.utils import cached_file

        return json.loads(Path(cached_file(path, "config.json")).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StudioError(f"Could not read the config of {path!r}: {error}. Offline, only the embedded default and local folders work.") from error


def config_hash(config: dict) -> str:
    """A short hash of what makes two bases the same model shape and vocabulary (not where it was loaded from)."""
    kept = {k: v for k, v in config.items() if k not in _VOLATILE_KEYS and not k.startswith("_")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


BASE_FILE = "studio_base.json"  # written next to adapter_config.json by the training worker


def write_adapter_base(adapter_dir: Path, base_model: str, base_hash: str) -> None:
    from core.storage import atomic_write_json

    atomic_write_json(Path(adapter_dir) / BASE_FILE, {"base_model": base_model, "base_config_hash": base_hash})


def check_adapter_base(adapter_dir: str | Path, base_model: str, base_config: dict) -> None:
    """Raise a StudioError naming both models when the adapter was trained on another base."""
    try:
        recorded = json.loads((Path(adapter_dir) / BASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an adapter from elsewhere: peft's own shape checks are all we have
    if recorded.get("base_config_hash") and recorded["base_config_hash"] != config_hash(base_config):
        raise StudioError(
            f"The adapter in {adapter_dir} was trained on {recorded.get('base_model')!r}, but the loaded model is {base_model!r} "
            "(a different config). Load it with its own base model, or train a new adapter on this one."
        )


# ---------------------------------------------------------------- chat styles for Ollama Modelfiles
@dataclass(frozen=True)
class ChatStyle:
    marker: str  # text that identifies the style inside a tokenizer's chat_template
    template: str  # Ollama (Go) TEMPLATE
    stops: tuple[str, ...] = field(default=())


CHAT_STYLES: dict[str, ChatStyle] = {
    "chatml": ChatStyle(
        "<|im_start|>",
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ("<|im_end|>",),
    ),
    "llama3": ChatStyle(
        "<|start_header_id|>",
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|eot_id|>",),
    ),
    "phi3": ChatStyle(
        "<|assistant|>",
        "{{- if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n",
        ("<|end|>", "<|user|>", "<|assistant|>"),
    ),
    "mistral": ChatStyle(
        "[INST]",
        "{{- range $i, $_ := .Messages }}{{- if eq .Role \"user\" }}[INST] {{ if and $.System (eq $i 0) }}{{ $.System }}\n\n{{ end }}"
        "{{ .Content }}[/INST]{{- else if eq .Role \"assistant\" }} {{ .Content }}</s>{{- end }}{{- end }}",
        ("[INST]", "[/INST]"),
    ),
    "gemma": ChatStyle(
        "<start_of_turn>",
        "{{- range $i, $_ := .Messages }}{{- if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n"
        "{{- else }}<start_of_turn>user\n{{ if and $.System (eq $i 0) }}{{ $.System }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n"
        "{{- end }}{{- end }}<start_of_turn>model\n",
        ("<end_of_turn>",),
    ),
}


def chat_style_for(chat_template: str | None, model_type: str | None) -> str:
    """The Ollama style that matches the tokenizer's own template, else the family's default."""
    for name, style in CHAT_STYLES.items():
        if chat_template and style.marker in chat_template:
            return name
    return family_for(model_type).chat_style


def ollama_modelfile(source: str, chat_template: str | None, model_type: str | None, system: str, adapter: str | None = None) -> str:
    """An Ollama Modelfile: FROM the GGUF (and ADAPTER when given), the family's TEMPLATE and stop tokens."""
    style = CHAT_STYLES[chat_style_for(chat_template, model_type)]
    lines = [f"FROM {source}"]
    if adapter:
        lines.append(f"ADAPTER {adapter}")
    lines.append(f'TEMPLATE """{style.template}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in style.stops]
    lines += ["PARAMETER temperature 0", f'SYSTEM """{system}"""', ""]
    return "\n".join(lines)


def describe(families: Iterable[ModelFamily] = FAMILIES) -> list[dict[str, Any]]:
    """The table as rows, for the README matrix and the UI."""
    return [
        {"family": f.name, "model_type": ", ".join(f.model_types), "attention": ", ".join(f.attention_targets),
         "all linear": ", ".join(f.all_linear_targets), "system role": "yes" if f.system_role else "folded into the first user turn",
         "GGUF": "yes" if f.gguf else "no", "notes": f.notes}
        for f in families
    ]
