"""Tiny random-init models, one per family, saved as ordinary transformers folders (no network).

Each has hidden size 64 and 2 layers on the embedded SmolLM2 tokenizer's vocabulary, with that family's
special tokens and a chat template shaped like the real one (Phi-3's <|user|>/<|end|>, Qwen2.5's default
system turn, Mistral's [INST] without a system role, Gemma 2's <start_of_turn> that raises on a system turn).
Building all five takes a few seconds once the embedded tokenizer is on disk.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# family key -> architecture, config class, added special tokens, bos/eos/pad, end-of-turn, template (None = SmolLM2's own)
SPECS = {
    "llama": dict(arch="LlamaForCausalLM", config="LlamaConfig", added=[], bos="<|im_start|>", eos="<|im_end|>", pad=None,
                  turn_end=[], template=None),
    # <unk>/<s>/</s>: the real Phi-3 vocabulary has them, and llama.cpp looks them up by text for any model named
    # "phi3"/"phi-3" (the GGUF's general.name, from the folder name): without them it stops with unordered_map::at
    "phi3": dict(arch="Phi3ForCausalLM", config="Phi3Config",
                 added=["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
                 bos="<|im_start|>", eos="<|endoftext|>", pad="<|endoftext|>", turn_end=["<|end|>"], template=PHI3_TEMPLATE),
    "qwen2": dict(arch="Qwen2ForCausalLM", config="Qwen2Config", added=[], bos=None, eos="<|im_end|>", pad="<|endoftext|>",
                  turn_end=[], template=QWEN2_TEMPLATE),
    "mistral": dict(arch="MistralForCausalLM", config="MistralConfig", added=["<s>", "</s>", "[INST]", "[/INST]"], bos="<s>", eos="</s>",
                    pad=None, turn_end=[], template=MISTRAL_TEMPLATE),
    "gemma2": dict(arch="Gemma2ForCausalLM", config="Gemma2Config", added=["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
                   bos="<bos>", eos="<eos>", pad="<pad>", turn_end=["<end_of_turn>"], template=GEMMA_TEMPLATE),
}
FAMILY_KEYS = tuple(SPECS)


def build_tiny_model(key: str, tokenizer_source: Path, out: Path) -> Path:
    """Write a random-init `key` model with a family-like tokenizer into `out` (hidden 64, 2 layers)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    spec = SPECS[key]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if key == "gemma2":  # Gemma's converter path needs a sentencepiece tokenizer.model, as the real Gemma 2 ships
        tokenizer = _sentencepiece_tokenizer(out, spec["added"])
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if spec["added"] and key != "gemma2":
        tokenizer.add_tokens(spec["added"], special_tokens=True)
    tokenizer.bos_token = spec["bos"]
    tokenizer.eos_token = spec["eos"]
    tokenizer.pad_token = spec["pad"]
    if spec["template"]:
        tokenizer.chat_template = spec["template"]
    tokenizer.save_pretrained(out)
    if key != "gemma2":
        _hub_pre_tokenizer(out, phi3_gpt2=key == "phi3")
    vocab = -(-len(tokenizer) // 64) * 64
    ids = tokenizer.get_vocab()
    common = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, bos_token_id=ids.get(spec["bos"]) if spec["bos"] else None, eos_token_id=ids[spec["eos"]],
        pad_token_id=ids[spec["pad"]] if spec["pad"] else None, tie_word_embeddings=key in ("gemma2", "llama"),
    )
    if key == "gemma2":
        common.update(head_dim=16, query_pre_attn_scalar=16, sliding_window=128)
    if key == "mistral":
        common.update(sliding_window=None)
    config = getattr(transformers, spec["config"])(**common)
    config.architectures = [spec["arch"]]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    eos = [ids[spec["eos"]]] + [ids[t] for t in spec["turn_end"]]
    model.generation_config = GenerationConfig(bos_token_id=common["bos_token_id"], eos_token_id=eos if len(eos) > 1 else eos[0],
                                               pad_token_id=common["pad_token_id"])
    model.save_pretrained(out)
    return out


def _sentencepiece_tokenizer(out: Path, added: list[str]):
    """A 512-piece sentencepiece BPE model trained on the repo's own docs (~0.1 s), Gemma's id layout (pad 0, eos 1, bos 2, unk 3)."""
    import io

    import sentencepiece as spm
    from transformers import GemmaTokenizer

    root = Path(__file__).resolve().parents[1]
    lines = [line for name in ("README.md", "CONTRIBUTING.md") for line in (root / name).read_text().splitlines() if line.strip()]
    lines += [f"Question {i}: what colour is item {i}? Item {i} is blue. Risk: low." for i in range(50)]
    model = io.BytesIO()
    specials = [t for t in added if t not in ("<pad>", "<eos>", "<bos>")]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=512, model_type="bpe", user_defined_symbols=specials,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        byte_fallback=True, hard_vocab_limit=False, minloglevel=2,
    )
    (out / "tokenizer.model").write_bytes(model.getvalue())
    return GemmaTokenizer.from_pretrained(out)


def _hub_pre_tokenizer(folder: Path, phi3_gpt2: bool) -> None:
    """Give the tokenizer the pre-tokenizer SmolLM2 has on the hub (digits split, byte-level).

    transformers rebuilds the embedded GGUF's tokenizer with a Llama-3 style regex; llama.cpp's converter
    identifies a BPE tokenizer by hashing its encoding of a test string, and only the hub's form is known.
    Phi-3 uses the GPT2Tokenizer path of the converter, as Phi-4 (also Phi3ForCausalLM) does.
    """
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    path.write_text(json.dumps(data))
    if phi3_gpt2:
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config["tokenizer_class"] = "GPT2Tokenizer"
        config_path.write_text(json.dumps(config, indent=2))


def build_all(tokenizer_source: Path, root: Path) -> dict[str, Path]:
    root = Path(root)
    folders = {}
    for key in FAMILY_KEYS:
        target = root / key
        if not (target / "config.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            build_tiny_model(key, tokenizer_source, target)
        folders[key] = target
    return folders


def model_type(folder: Path) -> str:
    return json.loads((Path(folder) / "config.json").read_text())["model_type"]


def cached_build(tokenizer_source: Path, cache: Path) -> dict[str, Path]:
    """build_all into cache/tiny-families-<hash of this file>, atomically (a rename), reused by later sessions."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    root = Path(cache) / f"tiny-families-{digest}"
    if not all((root / key / "model.safetensors").exists() for key in FAMILY_KEYS):
        Path(cache).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".tiny-"))
        build_all(tokenizer_source, staging)
        try:
            staging.rename(root)
        except OSError:  # another session built it first
            shutil.rmtree(staging, ignore_errors=True)
    return {key: root / key for key in FAMILY_KEYS}
