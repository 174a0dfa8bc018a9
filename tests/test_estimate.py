"""core.estimate against hand-computed worked examples."""
from __future__ import annotations

import math

import pytest

from core import estimate as E
from core.errors import StudioError


def test_cpu_calibration_reproduces_the_measured_lora_throughput():
    # 4 * 135e6 * 165 = 8.91e10 FLOP/s; 1e5 tokens -> 4 * 135e6 * 1e5 / 8.91e10 = 606.06 s
    assert E.CPU_EFFECTIVE_TRAIN_FLOPS == pytest.approx(8.91e10)
    t = E.estimate_training(135e6, 1e5, E.get_hardware("cpu"))
    assert t.lora_seconds == pytest.approx(606.06, abs=0.01)
    assert 1e5 / t.lora_seconds == pytest.approx(165)  # tokens/s as measured
    assert t.full_seconds == pytest.approx(909.09, abs=0.01)  # 6/4 of LoRA
    # QLoRA on CPU: the measured 28.7 / 20.7 tokens/s ratio (bench/RESULTS_families.md) -> 606.06 * 1.3865 = 840.29 s
    assert t.qlora_seconds == pytest.approx(840.29, abs=0.01)


def test_gpu_training_time_from_peak_times_mfu():
    # Mistral-7B, 2e6 tokens, A100 80GB: 4 * 7.2e9 * 2e6 = 5.76e16 FLOP;
    # 312e12 * 0.35 = 1.092e14 FLOP/s -> 527.47 s; QLoRA x1.39 -> 733.2 s
    t = E.estimate_training(7.2e9, 2e6, E.get_hardware("a100-80gb"))
    assert t.lora_flops == pytest.approx(5.76e16)
    assert t.effective_flops == pytest.approx(1.092e14)
    assert t.lora_seconds == pytest.approx(527.47, abs=0.01)
    assert t.qlora_seconds == pytest.approx(733.19, abs=0.01)
    assert t.full_flops == pytest.approx(8.64e16)


def test_lora_memory_mistral_on_t4_does_not_fit_but_qlora_does():
    inputs = E.EstimateInputs(params=7.2e9, train_tokens=2e6, hardware="t4")
    m, hw = E.MODELS["mistral-7b"], E.get_hardware("t4")
    lora = E.estimate_memory(m, hw, inputs, "LoRA")
    qlora = E.estimate_memory(m, hw, inputs, "QLoRA")
    # weights: 7.2e9 * 2 B = 14.4 GB (bf16); 7.2e9 * 4.127/8 B = 3.7143 GB (NF4 + double quant)
    assert lora.weights_gb == pytest.approx(14.4)
    assert qlora.weights_gb == pytest.approx(3.7143, abs=1e-4)
    # LoRA params: 16 * 21.5 * 4096 * 32 = 45,088,768; x16 B (weight, grad, 2 Adam moments) = 0.7214 GB
    assert E.lora_trainable_params(m) == 45_088_768
    assert lora.trainable_gb == pytest.approx(0.72142, abs=1e-5)
    # activations, 4 x 512 tokens = 2048: checkpoints 2048*4096*32*2 = 536.9 MB; working 2048*4096*17*2
    # = 285.2 MB; logits 2048*32000*4*2 = 524.3 MB -> 1.3464 GB
    assert lora.activations_gb == pytest.approx(1.34644, abs=1e-4)
    assert lora.total_gb == pytest.approx(14.4 + 0.72142 + 1.34644 + 1.0, abs=1e-4)
    assert not lora.fits  # 17.47 > 16 * 0.9
    assert qlora.fits  # 6.78 < 14.4


def test_qlora_on_cpu_is_feasible_with_nf4_weights_and_fp32_compute():
    est = E.estimate(E.EstimateInputs(params=135e6, train_tokens=1e5, hardware="cpu"))
    assert est.qlora.supported and est.qlora.fits and est.lora.fits
    # weights: 135e6 * 4.127/8 B = 0.069643 GB (NF4) vs 135e6 * 4 B = 0.54 GB (fp32 LoRA)
    assert est.qlora.weights_gb == pytest.approx(0.069643, abs=1e-6)
    assert est.lora.weights_gb == pytest.approx(0.54)
    # the CPU backend computes in fp32, so adapter, optimizer and activations are LoRA's
    assert est.qlora.trainable_gb == est.lora.trainable_gb
    assert est.qlora.activations_gb == est.lora.activations_gb
    assert est.qlora.total_gb == pytest.approx(0.069643 + 0.095109 + 1.027080 + 1.0, abs=1e-5)
    assert "CUDA" not in est.qlora.note and "1.39x slower" in est.qlora.note


def test_mistral_on_cpu_lora_does_not_fit_but_qlora_does():
    est = E.estimate(E.EstimateInputs(params=7.2e9, train_tokens=2e6, hardware="cpu"))
    # fp32 activations, 2048 tokens: checkpoints 2048*4096*32*4 = 1073.7 MB, working 2048*4096*17*4 = 570.4 MB,
    # logits 2048*32000*4*2 = 524.3 MB -> 2.16846 GB; QLoRA total 3.7143 + 0.72142 + 2.16846 + 1.0 = 7.6042 GB
    assert est.qlora.activations_gb == pytest.approx(2.16846, abs=1e-5)
    assert est.qlora.total_gb == pytest.approx(7.6042, abs=1e-4)
    assert not est.lora.fits and est.qlora.fits  # LoRA 32.7 GB > 14.4; QLoRA 7.6 GB fits
    assert est.notes == ["LoRA does not fit in memory; QLoRA does."]


def test_rag_index_and_ingest_worked_example_on_cpu():
    # 1000 pages * 600 tokens / 220 = 2727.3 -> 2728 chunks
    r = E.estimate_rag(1000, 135e6, E.get_hardware("cpu"))
    assert r.chunks == 2728
    assert r.vector_bytes == 2728 * 384 * 4 == 4_190_208
    assert r.text_bytes == 2728 * 220 * 4 == 2_400_640
    assert r.index_bytes == 6_590_848
    assert r.parse_seconds == pytest.approx(1000 / 75)  # pypdf 75 pages/s
    assert r.embed_seconds == pytest.approx(2728 / 19)  # MiniLM 19 chunks/s = 143.6 s
    assert r.retrieval_ms == pytest.approx(15 + 9 * 2728 / 1e5)  # 15.25 ms


def test_search_latency_is_the_measured_faiss_figure_at_100k_vectors():
    pages = math.ceil(100_000 * 220 / 600)  # enough pages for >= 100k chunks
    r = E.estimate_rag(pages, 135e6, E.get_hardware("cpu"))
    assert r.retrieval_ms - E.CPU_QUERY_EMBED_MS == pytest.approx(9.0, rel=1e-3)


def test_answer_latency_reproduces_measured_cpu_decode_and_prefill():
    r = E.estimate_rag(10, 135e6, E.get_hardware("cpu"))
    decode = 150 / 13.5  # 11.11 s at the measured 13.5 tokens/s
    plain_prefill = 60 / 360  # 0.167 s at the measured 360 prompt tokens/s
    rag_prefill = (60 + 4 * 220) / 360  # 2.61 s
    assert r.plain_answer_seconds == pytest.approx(decode + plain_prefill)
    assert r.rag_answer_seconds == pytest.approx(r.retrieval_ms / 1000 + rag_prefill + decode)


def test_gpu_embedding_throughput_from_flops():
    # T4: 65e12 * 0.25 / (2 * 22.7e6 * 220) = 1627 chunks/s
    r = E.estimate_rag(1000, 7.2e9, E.get_hardware("t4"))
    assert r.chunks / r.embed_seconds == pytest.approx(65e12 * 0.25 / (2 * 22.7e6 * 220))


def test_pages_default_to_ten_per_document():
    est = E.estimate(E.EstimateInputs(params=3.8e9, train_tokens=2e6, hardware="l4", docs=50))
    assert est.rag.pages == 500
    assert est.model.key == "phi-3-mini"


def test_custom_model_size_derives_a_plausible_shape():
    m = E.model_for_params(3.0e9)
    assert m.key == "custom" and m.layers == 32
    assert m.hidden == int(math.sqrt(3.0e9 / 384))  # 2795


def test_unknown_hardware_lists_the_choices():
    with pytest.raises(StudioError, match="unknown hardware 'v100'.*cpu, t4, l4, a10g"):
        E.get_hardware("v100")
    assert E.get_hardware(" T4 ").key == "t4"


@pytest.mark.parametrize("bad", [dict(params=0, train_tokens=1), dict(params=1e9, train_tokens=-1),
                                 dict(params=1e9, train_tokens=1, epochs=0)])
def test_invalid_inputs_raise(bad):
    with pytest.raises(StudioError):
        E.estimate(E.EstimateInputs(**bad))


def test_catalogue_has_the_named_models_and_gpus():
    assert {m.params for m in E.MODELS.values()} == {3.8e9, 7.2e9, 8.0e9, 135e6}
    assert {"t4": 16, "l4": 24, "a10g": 24, "a100-40gb": 40, "a100-80gb": 80, "h100": 80, "rtx4090": 24} == {
        k: h.memory_gb for k, h in E.HARDWARE.items() if h.is_gpu}


def test_summary_lines_are_plain_text():
    est = E.estimate(E.EstimateInputs(params=7.2e9, train_tokens=2e6, hardware="t4", docs=100))
    lines = E.summary_lines(est)
    assert any(line.startswith("LoRA:") and "does NOT fit" in line for line in lines)
    assert any(line.startswith("QLoRA:") and "(fits)" in line for line in lines)
    assert "LoRA does not fit in memory; QLoRA does." in lines
    assert E.human_seconds(606.06) == "10 min" and E.human_seconds(0.015) == "15 ms"
    assert E.human_bytes(6_590_848) == "6.6 MB"


def test_parameter_count_from_config_json_alone(tmp_path):
    """Phi-3-mini-4k-instruct's config.json (hub values): 3,821,079,552 parameters, with no weights anywhere."""
    import json

    config = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
              "max_position_embeddings": 4096, "tie_word_embeddings": False, "pad_token_id": 32000}
    (tmp_path / "config.json").write_text(json.dumps(config))
    spec = E.model_from_config(str(tmp_path))
    assert spec.params == 3_821_079_552 and (spec.layers, spec.hidden, spec.vocab) == (32, 3072, 32064)
    assert not list(tmp_path.glob("*.safetensors"))
    est = E.estimate(E.EstimateInputs(params=spec.params, train_tokens=1e6, hardware="cpu"), spec)
    assert est.model.label.endswith("(3.8B)")
    # an architecture transformers does not know is counted from its sizes
    (tmp_path / "config.json").write_text(json.dumps(dict(config, model_type="no-such-arch", architectures=["NoSuchForCausalLM"])))
    assert abs(E.model_from_config(str(tmp_path)).params - 3_821_079_552) / 3.82e9 < 0.01
