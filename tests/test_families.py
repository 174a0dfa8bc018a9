"""The model-family table against real (tiny, random-init) models of each family: targets, chat quirks, masks.

Fast: configs on the meta device and tokenizers only; the models are built once per session (tests/tiny_families.py).
"""
from __future__ import annotations

import json

import pytest

from core import families as F
from core import training as T
from core.datasets import make_row, row_messages
from core.errors import StudioError
from core.generation import DEFAULT_SYSTEM
from tests.tiny_families import FAMILY_KEYS

EXPECTED_FAMILY = {"llama": "Llama / SmolLM", "phi3": "Phi-3", "qwen2": "Qwen2 / Qwen2.5", "mistral": "Mistral", "gemma2": "Gemma 2"}
ROW = make_row("Summarise the risk in one line.", "The bridge was painted in 1932.", "Paint ages; repaint every ten years.")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from core.settings import get_workspace

    return get_workspace(tmp_path_factory.mktemp("families-ws"))


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_each_family_gets_the_table_targets_and_they_exist(ws, tiny_family_models, key):
    facts = T.model_facts(ws, str(tiny_family_models[key]))
    family = F.family_for(facts.model_type)
    assert facts.family == EXPECTED_FAMILY[key]
    assert facts.target_sets == {"all linear": family.all_linear_targets, "attention": family.attention_targets}
    assert set(family.all_linear_targets) <= set(facts.linear_names) and "lm_head" not in facts.linear_names
    lora = T.resolve_lora(T.preset("demo")[0], facts)
    assert lora.target_modules == family.all_linear_targets
    assert T.lora_parameter_count(facts, lora) > 0


def test_phi3_targets_are_the_fused_layers(ws, tiny_family_models):
    facts = T.model_facts(ws, str(tiny_family_models["phi3"]))
    assert facts.target_sets["all linear"] == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    assert "q_proj" not in facts.linear_names  # the old Llama-only preset would have been refused here


def _config_folder(tmp_path, config) -> str:
    config.save_pretrained(tmp_path)
    return str(tmp_path)


def test_an_unknown_architecture_trains_on_its_own_linear_layers(ws, tmp_path):
    from transformers import GPTNeoXConfig

    folder = _config_folder(tmp_path, GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                                    vocab_size=256))
    facts = T.model_facts(ws, folder)
    assert facts.family == F.UNKNOWN.name
    assert facts.target_sets["all linear"] == ("dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value")
    assert facts.target_sets["attention"] == ("dense", "query_key_value")
    assert T.lora_parameter_count(facts, T.resolve_lora(T.LoraSettings(), facts)) > 0


def test_gpt2_conv1d_layers_count_as_linear(ws, tmp_path):
    from transformers import GPT2Config

    facts = T.model_facts(ws, _config_folder(tmp_path, GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256)))
    assert set(facts.target_sets["all linear"]) == {"c_attn", "c_proj", "c_fc"}
    assert T.lora_parameter_count(facts, T.resolve_lora(T.LoraSettings(), facts)) > 0


def test_a_known_family_with_other_layer_names_falls_back_to_its_own_layers():
    layers = {"wq": ["model.layers.0.self_attn.wq"], "w1": ["model.layers.0.mlp.w1"]}
    assert F.target_sets("llama", layers) == {"all linear": ("w1", "wq"), "attention": ("wq",)}


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_completion_only_loss_masks_exactly_the_prompt(tiny_family_models, key):
    tokenizer = F.load_tokenizer(str(tiny_family_models[key]))
    messages = row_messages(ROW)
    prompt_ids = list(tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    encoded = T.encode_row(tokenizer, ROW, 256)
    ids, labels = encoded["input_ids"], encoded["labels"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):] and len(ids) > len(prompt_ids)
    taught = tokenizer.decode(ids[len(prompt_ids):])
    assert taught.strip().startswith(ROW["output"])
    ends = {tokenizer.eos_token} | set(F.family_for(F.read_config(str(tiny_family_models[key]))["model_type"]).end_of_turn)
    assert any(end in taught for end in ends), f"{key}: the answer must end with an end-of-turn token the model learns to emit: {taught!r}"
    # the prompt keeps the system voice whatever the template allows
    assert DEFAULT_SYSTEM in tokenizer.decode(prompt_ids)
    no_mask = T.encode_row(tokenizer, ROW, 256, completion_only_loss=False)
    assert no_mask["labels"] == no_mask["input_ids"]


def test_gemma_and_mistral_fold_the_system_turn_into_the_first_user_turn(tiny_family_models):
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(tiny_family_models["gemma2"])
    with pytest.raises(Exception, match="System role not supported"):
        raw.apply_chat_template(row_messages(ROW)[:-1], tokenize=False)
    for key in ("gemma2", "mistral"):
        text = F.load_tokenizer(str(tiny_family_models[key])).apply_chat_template(row_messages(ROW)[:-1], add_generation_prompt=True, tokenize=False)
        assert text.count(DEFAULT_SYSTEM) == 1 and text.index(DEFAULT_SYSTEM) < text.index(ROW["instruction"])
    assert F.fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]) == [{"role": "user", "content": "S\n\nU"}]


def test_a_tokenizer_without_a_chat_template_still_trains(tiny_family_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_family_models["llama"])
    tokenizer.chat_template = None
    F.prepare_tokenizer(tokenizer, "llama")
    encoded = T.encode_row(tokenizer, ROW, 256)
    assert -100 in encoded["labels"] and encoded["labels"][-1] != -100


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_the_loaded_generator_stops_on_the_family_end_of_turn(ws, tiny_family_models, key):
    from core.models import GeneratorSpec, load_generator

    loaded = load_generator(GeneratorSpec(model_id=str(tiny_family_models[key]), dtype="float32"), ws)
    eos = loaded.model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    vocab = loaded.tokenizer.get_vocab()
    assert loaded.tokenizer.eos_token_id in eos and loaded.tokenizer.pad_token is not None
    for token in F.family_for(loaded.model.config.model_type).end_of_turn:
        if token in vocab:
            assert vocab[token] in eos


def test_an_adapter_on_another_base_fails_naming_both(tmp_path, tiny_family_models):
    llama = F.read_config(str(tiny_family_models["llama"]))
    F.write_adapter_base(tmp_path, "my-llama", F.config_hash(llama))
    F.check_adapter_base(tmp_path, "same shape elsewhere", dict(llama, _name_or_path="/elsewhere", transformers_version="x"))
    with pytest.raises(StudioError, match="trained on 'my-llama'.*loaded model is 'phi-base'"):
        F.check_adapter_base(tmp_path, "phi-base", F.read_config(str(tiny_family_models["phi3"])))


@pytest.mark.parametrize("key, marker, stop", [("llama", "<|im_start|>", "<|im_end|>"), ("phi3", "<|assistant|>", "<|end|>"),
                                               ("qwen2", "<|im_start|>", "<|im_end|>"), ("mistral", "[INST]", "[INST]"),
                                               ("gemma2", "<start_of_turn>model", "<end_of_turn>")])
def test_ollama_modelfile_uses_the_family_template(tiny_family_models, key, marker, stop):
    folder = tiny_family_models[key]
    template = F.load_tokenizer(str(folder)).chat_template
    text = F.ollama_modelfile("./m.gguf", template, json.loads((folder / "config.json").read_text())["model_type"], "Be brief.")
    assert text.startswith("FROM ./m.gguf") and marker in text and f'PARAMETER stop "{stop}"' in text


def test_one_process_runs_the_worker_several_run_under_accelerate_launch(tmp_path):
    assert T.worker_command(tmp_path, 1)[1:] == ["-m", "core.training.worker", str(tmp_path)]
    command = T.worker_command(tmp_path, 2)
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert command[command.index("--num_processes") + 1] == "2" and command[-2:] == ["core.training.worker", str(tmp_path)]
    assert T.process_count(T.TrainingSettings(processes=3)) == 3
    import torch

    assert T.process_count(T.TrainingSettings()) == max(1, torch.cuda.device_count())


def test_device_and_precision_choice():
    import torch

    from core.models import resolve_dtype_name
    from core.training.worker import training_device

    device, dtype = training_device("auto")
    if torch.cuda.is_available():
        assert device == "cuda" and dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    elif device == "cpu":  # bf16 only on a CPU with it native (and then only when its cores are free)
        from core.machine import NATIVE_BF16_FLAGS, cpu_flags

        assert dtype == "float32" or (dtype == "bfloat16" and set(NATIVE_BF16_FLAGS) & cpu_flags())
        assert training_device("auto", cpu_bf16=False)[1] == "float32"  # QLoRA keeps fp32 compute on the CPU
        # one thread never collapses in bf16 (the collapse is threads spinning on shared cores): native means bf16
        one_thread = training_device("auto", threads=1)[1]
        assert one_thread == ("bfloat16" if set(NATIVE_BF16_FLAGS) & cpu_flags() else "float32")
        assert training_device("auto", cpu_bf16=False, threads=1)[1] == "float32"
    else:
        assert dtype == "float32" and device == "mps"
    assert training_device("bfloat16")[1] == "bfloat16"
    assert resolve_dtype_name("auto", "cpu") == "float32" and resolve_dtype_name("auto", "mps") == "float32"
    assert resolve_dtype_name("float16", "cpu") == "float16"
