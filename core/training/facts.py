"""What a base model is, read from its config on the meta device (no weights): layer names, shapes, context, family."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.errors import StudioError
from core.models import EMBEDDED_GENERATOR, GeneratorSpec, resolve_generator_path
from core.settings import Workspace
from core.training.hparams import LoraSettings

@dataclass(frozen=True)
class ModelFacts:
    path: str
    linear_names: tuple[str, ...]
    max_length: int
    total_params: int
    hidden_size: int
    num_layers: int
    linear_shapes: dict  # short name -> list of (in, out), one per layer
    model_type: str = ""
    family: str = ""
    target_sets: dict = field(default_factory=dict)  # "all linear" / "attention" -> module names (core/families.py)
    config_hash: str = ""


def model_facts(workspace: Workspace, base_model: str = EMBEDDED_GENERATOR) -> ModelFacts:
    """Layer names, context and sizes from the config on the meta device: exact and instant (no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from core import families

    path = resolve_generator_path(GeneratorSpec(model_id=base_model), workspace)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise StudioError(f"Could not read the config of {base_model!r}: {error}") from error
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = families.linear_layers(model)
    modules = dict(model.named_modules())
    shapes = {short: [families.in_out_features(modules[p]) for p in paths] for short, paths in layers.items()}
    total = sum(p.numel() for p in model.parameters())
    model_type = getattr(config, "model_type", "") or ""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelFacts(
        path=path,
        linear_names=tuple(sorted(shapes)),
        max_length=int(getattr(text_config, "max_position_embeddings", 2048) or 2048),
        total_params=int(total),
        hidden_size=int(getattr(text_config, "hidden_size", 0) or 0),
        num_layers=int(getattr(text_config, "num_hidden_layers", 0) or 0),
        linear_shapes=shapes,
        model_type=model_type,
        family=families.family_for(model_type).name,
        target_sets=families.target_sets(model_type, layers),
        config_hash=families.config_hash(families.read_config(path)),
    )


def resolve_lora(lora: LoraSettings, facts: ModelFacts) -> LoraSettings:
    """Name the target modules when the settings leave them to the family table (what the run records)."""
    if lora.target_modules:
        return lora
    return replace(lora, target_modules=tuple(facts.target_sets.get(lora.target_set) or facts.linear_names))


def lora_parameter_count(facts: ModelFacts, lora: LoraSettings) -> int:
    """A (r x in) + B (out x r) per adapted layer, as peft builds them."""
    lora = resolve_lora(lora, facts)
    return sum(lora.r * (i + o) for name in lora.target_modules for i, o in facts.linear_shapes.get(name, []))
