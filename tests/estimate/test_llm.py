"""The LLM fit estimate (llmhost.estimate.llm: weights, KV cache, activations, CUDA graphs)
on real architectures.

tests/fixtures/ holds the real config.json and safetensors index metadata of
Qwen2.5-7B-Instruct (and its AWQ variant), Llama-3.1-8B-Instruct and DeepSeek-V2-Lite
(MLA), no weights. Every expected figure below is derived from the architecture in the
test itself and cross-checked against a published one:

* [qwen-index] Qwen/Qwen2.5-7B-Instruct model.safetensors.index.json: total_size
  15231233024; model card: 7.61B parameters.
* [qwen-awq-files] Qwen/Qwen2.5-7B-Instruct-AWQ file list on the Hub: two shards of
  4 GB and 1.57 GB.
* [llama-index] meta-llama/Llama-3.1-8B-Instruct index: total_size 16060522496 (the
  example in the Hugging Face Hub docs, "Transformers repository files").
* [llama-kv] Llama 3.1 8B, bf16: 128 KiB of KV cache per token (32 layers x 8 KV heads
  x 128 dims x K and V x 2 bytes).
* [dsv2-index] deepseek-ai/DeepSeek-V2-Lite index: total_size 31412968448; DeepSeek-V2
  paper (arXiv:2405.04434): 15.7B total parameters, KV cache of (d_c + d_h^R) x l
  elements per token for MLA.
* [vllm-16gb] A vLLM run of Qwen2.5-7B-Instruct-AWQ on an RTX 4080 16 GB under WSL2
  (akiyax/kvcache-lab, docs/phase1-baseline.md, vLLM 0.26): "Available KV cache memory:
  8.0 GiB, GPU KV cache size: 149,712 tokens"; 5.29 GiB weights, 1.04 GiB peak
  activation, 0.48 GiB CUDA graphs, 0.06 GiB non-torch.
* [vllm-mla] DeepSeek-V2-Lite under vLLM 0.26 on the same card (same repository,
  docs/mla-verification.md): 175,120 tokens in 5.07 GiB of KV cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmhost.estimate import estimate_route, figures, verdict
from llmhost.estimate import llm as llm_parts
from llmhost.estimate import weights as weight_parts
from llmhost.units import GIB
from tests.estimate.support import (
    DSV2,
    KIB,
    LLAMA,
    QWEN,
    QWEN_AWQ,
    awq_dir,
    awq_gemm_bytes,
    config,
    dense_params,
    route,
)


def deepseek_v2_params(c: dict[str, Any]) -> int:
    h, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    heads, rank, rope, nope, v = (
        c["num_attention_heads"],
        c["kv_lora_rank"],
        c["qk_rope_head_dim"],
        c["qk_nope_head_dim"],
        c["v_head_dim"],
    )
    attn = (
        h * heads * (nope + rope)  # q_proj (q_lora_rank is null)
        + h * (rank + rope)  # kv_a_proj_with_mqa
        + rank  # kv_a_layernorm
        + rank * heads * (nope + v)  # kv_b_proj
        + heads * v * h  # o_proj
        + 2 * h  # the two RMSNorms
    )
    dense = 3 * h * c["intermediate_size"]
    moe_i = c["moe_intermediate_size"]
    moe = (
        c["n_routed_experts"] * 3 * h * moe_i
        + 3 * h * moe_i * c["n_shared_experts"]
        + c["n_routed_experts"] * h
    )
    k = c["first_k_dense_replace"]
    return int(2 * vocab * h + layers * attn + k * dense + (layers - k) * moe + h)


# ---- weights ------------------------------------------------------------------------------


def test_qwen_weights_come_from_the_index_and_match_the_architecture() -> None:
    est = estimate_route(route("agent", QWEN, max_model_len=8192))
    params = dense_params(config(QWEN), qkv_bias=True)
    assert est.weights_bytes == 2 * params  # bf16 [qwen-index]: 15,231,233,024
    assert round(params / 1e9, 2) == 7.62 and abs(params / 1e9 - 7.61) < 0.01  # model card "7.61B"
    assert est.unknown_reason is None and est.source == str(QWEN)


def test_llama_weights_come_from_the_index_and_match_the_architecture() -> None:
    est = estimate_route(route("chat", LLAMA, max_model_len=8192))
    assert est.weights_bytes == 2 * dense_params(config(LLAMA), qkv_bias=False)  # [llama-index]
    assert est.weights_bytes == 16_060_522_496


def test_deepseek_v2_lite_weights_match_the_architecture() -> None:
    est = estimate_route(route("coderslow", DSV2, max_model_len=4096))
    params = deepseek_v2_params(config(DSV2))
    assert est.weights_bytes == 2 * params  # [dsv2-index]
    assert round(params / 1e9, 1) == 15.7  # the paper's 15.7B


def test_awq_weights_are_the_sum_of_the_shard_files(tmp_path: Path) -> None:
    model = awq_dir(tmp_path)
    est = estimate_route(route("coder", model, max_model_len=8192))
    derived = awq_gemm_bytes(config(QWEN_AWQ))
    assert est.weights_bytes == derived  # quantized: no dtype rescaling
    published = 4.00e9 + 1.57e9  # [qwen-awq-files]
    assert abs(derived - published) / published < 0.005
    measured = 5.29 * GIB  # [vllm-16gb]: vLLM's own "model weights" figure (awq_marlin)
    assert abs(derived - measured) / measured < 0.03


def test_fp32_checkpoints_load_as_16_bit_unless_dtype_says_float32() -> None:
    c = {**config(QWEN), "torch_dtype": "float32"}
    stored = 4 * dense_params(c, qkv_bias=True)
    assert weight_parts.gpu_weight_bytes(stored, c, {}) == stored // 2
    assert weight_parts.gpu_weight_bytes(stored, c, {"dtype": "float32"}) == stored
    # Online fp8 (tests/estimate/test_online_quant.py has every method): linear layers at one
    # byte, embeddings and lm_head still at two, so more than half the bf16 checkpoint.
    bf16 = 2 * dense_params(c, qkv_bias=True)
    assert weight_parts.gpu_weight_bytes(bf16, config(QWEN), {"quantization": "fp8"}) > bf16 // 2 + GIB


# ---- KV cache -----------------------------------------------------------------------------


def test_kv_per_token_of_each_architecture() -> None:
    q, ll, ds = config(QWEN), config(LLAMA), config(DSV2)
    assert llm_parts.kv_bytes_per_token(q, 2) == 2 * 28 * 4 * (3584 // 28) * 2 == 56 * KIB
    assert llm_parts.kv_bytes_per_token(ll, 2) == 2 * 32 * 8 * 128 * 2 == 128 * KIB  # [llama-kv]
    # MLA: one latent of kv_lora_rank + qk_rope_head_dim per token and layer, no K/V pair,
    # no per-head copies [dsv2-index]; GQA arithmetic on its 16 "KV heads" would be 7x more.
    assert llm_parts.is_mla(ds) and not llm_parts.is_mla(q)
    assert llm_parts.kv_bytes_per_token(ds, 2) == 27 * (512 + 64) * 2 == 31_104
    assert 2 * 27 * 16 * 128 * 2 / 31_104 > 7


def test_kv_per_token_matches_what_vllm_allocated() -> None:
    qwen = llm_parts.kv_bytes_per_token(config(QWEN_AWQ), llm_parts.kv_dtype_bytes(config(QWEN_AWQ), {}))
    assert round(149_712 * qwen / GIB, 1) == 8.0  # [vllm-16gb]
    mla = llm_parts.kv_bytes_per_token(config(DSV2), llm_parts.kv_dtype_bytes(config(DSV2), {}))
    assert round(175_120 * mla / GIB, 2) == 5.07  # [vllm-mla]


def test_kv_cache_is_one_max_length_sequence_in_whole_blocks() -> None:
    c = config(LLAMA)
    per_token = 128 * KIB
    blocks = 8192 // 16 + 1  # whole 16-token blocks, plus the pool's null block
    assert llm_parts.kv_cache_bytes(c, {}, 8192) == blocks * 16 * per_token
    assert llm_parts.kv_cache_bytes(c, {"block_size": 32}, 8000) == (250 + 1) * 32 * per_token
    assert llm_parts.kv_cache_bytes(c, {"kv_cache_dtype": "fp8"}, 8192) == blocks * 16 * per_token // 2
    est = estimate_route(route("chat", LLAMA, max_model_len=8192))
    assert est.kv_cache_bytes == blocks * 16 * per_token and est.max_model_len == 8192


def test_max_model_len_comes_from_config_as_vllm_derives_it() -> None:
    assert llm_parts.max_model_len(config(QWEN), {}) == 32768
    # llama3 and yarn RoPE leave max_position_embeddings already scaled (vLLM's rule).
    assert llm_parts.max_model_len(config(LLAMA), {}) == 131072
    assert llm_parts.max_model_len(config(DSV2), {}) == 163840
    linear = {"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2.0}}
    assert llm_parts.derived_max_model_len(linear) == 8192
    assert llm_parts.max_model_len(config(DSV2), {"max_model_len": 4096}) == 4096
    # Sizes as vLLM's command line reads them (vllm/utils/argparse_utils.py).
    assert llm_parts.max_model_len(config(DSV2), {"max_model_len": "32k"}) == 32_000
    assert llm_parts.max_model_len(config(DSV2), {"max_model_len": "32K"}) == 32_768
    assert llm_parts.max_model_len(config(QWEN), {"max_model_len": "auto"}) == 32768
    # At its full 128K context, Llama 3.1 8B's KV cache alone is 16 GiB [llama-kv].
    est = estimate_route(route("chat", LLAMA))
    assert est.max_model_len == 131072 and est.kv_cache_bytes is not None
    assert est.kv_cache_bytes // GIB == 131072 * 128 * KIB // GIB == 16


# ---- overhead -----------------------------------------------------------------------------


def test_activations_match_the_profile_run_measured_for_qwen_7b() -> None:
    c = config(QWEN_AWQ)
    forward = 2048 * (4 * 3584 + 3 * 18944) * 2
    sampler = 256 * 152064 * 20
    assert llm_parts.activation_bytes(c, {}) == forward + sampler
    assert abs((forward + sampler) / GIB - 1.04) / 1.04 < 0.05  # [vllm-16gb] peak activation
    halved = llm_parts.activation_bytes(c, {"max_num_batched_tokens": 1024, "max_num_seqs": 128})
    assert halved == (forward + sampler) // 2


def test_non_kv_memory_matches_the_measured_engine(tmp_path: Path) -> None:
    est = estimate_route(route("coder", awq_dir(tmp_path), max_model_len=32768))
    assert est.engine_bytes is not None and est.kv_cache_bytes is not None
    ours = est.engine_bytes - est.kv_cache_bytes  # weights, activations, graphs, non-torch
    measured = (5.29 + 1.04 + 0.48 + 0.06) * GIB  # [vllm-16gb]
    assert abs(ours - measured) / measured < 0.05
    eager = estimate_route(route("coder", awq_dir(tmp_path), max_model_len=32768, enforce_eager=True))
    assert est.overhead_bytes is not None and eager.overhead_bytes is not None
    assert est.overhead_bytes - eager.overhead_bytes == figures.CUDA_GRAPH_BYTES


# ---- verdicts -----------------------------------------------------------------------------


def test_the_three_models_on_a_16_gb_card(tmp_path: Path) -> None:
    card = 16 * GIB
    qwen_bf16 = estimate_route(route("agent", QWEN, max_model_len=8192))
    awq = estimate_route(route("coder", awq_dir(tmp_path), max_model_len=8192))
    llama = estimate_route(route("chat", LLAMA, max_model_len=8192))
    dsv2 = estimate_route(route("coderslow", DSV2, max_model_len=4096))
    assert verdict(awq.need_bytes, card) == "fits"
    # 14.2 GiB of bf16 weights alone leave no room for the rest (why the routes ship 4-bit).
    for est in (qwen_bf16, llama, dsv2):
        assert verdict(est.need_bytes, card) == "does not fit"
    assert qwen_bf16.need_bytes is not None and awq.need_bytes is not None
    assert qwen_bf16.need_bytes - awq.need_bytes == 15_231_233_024 - awq_gemm_bytes(config(QWEN_AWQ))
