"""The fit estimate (llmhost.estimate, `llmhost check --gpu-memory`) on real architectures.

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
* [sd35] SD 3.5 Medium whole in fp16 is ~18 GB, T5-XXL ~9.5 GB plus its fp32 `wo`
  layers (issue 11; T5 v1.1 XXL: 24 layers, d_model 4096, d_ff 10240).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmhost import estimate
from llmhost.cli import main
from llmhost.config import RouteConfig
from llmhost.estimate import RouteEstimate, estimate_route, figures, resident_together, verdict
from llmhost.estimate import llm as llm_parts
from llmhost.estimate import weights as weight_parts
from llmhost.units import GIB

FIXTURES = Path(__file__).parents[1] / "fixtures"
QWEN = FIXTURES / "qwen2.5-7b-instruct"
QWEN_AWQ = FIXTURES / "qwen2.5-7b-instruct-awq"
LLAMA = FIXTURES / "llama-3.1-8b-instruct"
DSV2 = FIXTURES / "deepseek-v2-lite"
KIB = 1024


def config(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / "config.json").read_text())
    return data


def route(name: str, model: str | Path, **engine: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": name, "kind": "llm", "model": str(model), "engine": engine})


# ---- parameter counts from the architecture (independent of llmhost.estimate) ------------


def dense_params(c: dict[str, Any], qkv_bias: bool) -> int:
    h, inter, layers, vocab = (
        c["hidden_size"],
        c["intermediate_size"],
        c["num_hidden_layers"],
        c["vocab_size"],
    )
    heads, kv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = h // heads
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h + (heads * hd + 2 * kv * hd if qkv_bias else 0)
    per_layer = attn + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if c["tie_word_embeddings"] else 2)
    return int(embeddings + layers * per_layer + h)


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


def awq_gemm_bytes(c: dict[str, Any]) -> int:
    """AutoAWQ GEMM checkpoint: per linear in x out, qweight int32 [in, out/8], qzeros int32
    [in/g, out/8], scales fp16 [in/g, out]; embeddings, lm_head, norms and biases fp16."""
    h, inter, layers, vocab = (
        c["hidden_size"],
        c["intermediate_size"],
        c["num_hidden_layers"],
        c["vocab_size"],
    )
    g = c["quantization_config"]["group_size"]
    kv_out = c["num_key_value_heads"] * h // c["num_attention_heads"]
    linears = [(h, h), (h, kv_out), (h, kv_out), (h, h), (h, inter), (h, inter), (inter, h)]
    quant = sum(i * o // 2 + (i // g) * (o // 8) * 4 + (i // g) * o * 2 for i, o in linears)
    rest = (h + 2 * kv_out) * 2 + 2 * h * 2  # qkv biases, two norms
    return int(layers * (quant + rest) + 2 * vocab * h * 2 + h * 2)


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


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def awq_dir(root: Path) -> Path:
    """The AWQ checkpoint as a local directory: its real config.json, and two shard files
    (sparse, no data) that add up to the AWQ GEMM tensor bytes of the architecture."""
    target = root / "qwen2.5-7b-instruct-awq"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(QWEN_AWQ / "config.json", target / "config.json")
    total = awq_gemm_bytes(config(QWEN_AWQ))
    sparse(target / "model-00001-of-00002.safetensors", 4_000_000_000)
    sparse(target / "model-00002-of-00002.safetensors", total - 4_000_000_000)
    return target


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
    # Online fp8 (tests/estimate/test_weights.py has every method): linear layers at one
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


def test_verdict_thresholds() -> None:
    card = 16 * GIB
    assert verdict(int(0.9 * card), card) == "fits"
    assert verdict(int(0.9 * card) + 1, card) == "tight"
    assert verdict(card, card) == "tight"
    assert verdict(card + 1, card) == "does not fit"
    assert verdict(None, card) == "unknown"


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


def test_resident_together_lists_the_largest_groups_that_fit() -> None:
    needs: dict[str, int | None] = {"a": 6 * GIB, "b": 7 * GIB, "c": 8 * GIB, "d": None}
    # 16 GiB card: "fits" means at most 14.4 GiB together.
    assert resident_together(needs, 16 * GIB) == [("a", "b"), ("a", "c")]
    assert resident_together(needs, 24 * GIB) == [("a", "b", "c")]
    assert resident_together({"a": 10 * GIB, "b": 10 * GIB}, 16 * GIB) == []


# ---- the Hugging Face cache ---------------------------------------------------------------


def cache_snapshot(
    hub: Path, repo: str, revision: str, files: dict[str, bytes | int], ref: str | None = None
) -> Path:
    """Lay files out as huggingface_hub does: blobs/<hash>, snapshots/<rev>/name -> blob."""
    repo_dir = hub / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    for name, content in files.items():
        blob = repo_dir / "blobs" / f"{revision}-{name.replace('/', '_')}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            blob.write_bytes(content)
        elif content >= 0:
            sparse(blob, content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(revision)
    return snapshot


REV_MAIN = "a" * 40
REV_PINNED = "b" * 40


def test_reads_the_cache_snapshot_of_the_main_branch(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    snapshot = cache_snapshot(
        hub,
        "Qwen/Qwen2.5-7B-Instruct",
        REV_MAIN,
        {n: (QWEN / n).read_bytes() for n in ("config.json", "model.safetensors.index.json")},
        ref="main",
    )
    est = estimate_route(route("agent", "Qwen/Qwen2.5-7B-Instruct", max_model_len=8192), cache_dir=hub)
    assert est.weights_bytes == 2 * dense_params(config(QWEN), qkv_bias=True)
    assert est.source is not None and str(snapshot) in est.source


def test_honours_the_pinned_revision_and_sums_the_shards(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    repo = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    total = awq_gemm_bytes(config(QWEN_AWQ))
    cache_snapshot(hub, repo, REV_MAIN, {"config.json": (QWEN / "config.json").read_bytes()}, ref="main")
    cache_snapshot(
        hub,
        repo,
        REV_PINNED,
        {
            "config.json": (QWEN_AWQ / "config.json").read_bytes(),
            "model-00001-of-00002.safetensors": 4_000_000_000,
            "model-00002-of-00002.safetensors": total - 4_000_000_000,
        },
    )
    pinned = estimate_route(route("coder", repo, max_model_len=8192, revision=REV_PINNED), cache_dir=hub)
    assert pinned.weights_bytes == total
    # The main branch's snapshot has a config but no weights: the KV part is still known.
    main_branch = estimate_route(route("coder", repo, max_model_len=8192), cache_dir=hub)
    assert main_branch.need_bytes is None and main_branch.kv_cache_bytes == pinned.kv_cache_bytes
    assert main_branch.unknown_reason == "weights not in the cache: llmhost pull coder"


def test_a_half_downloaded_shard_is_not_counted(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    files: dict[str, bytes | int] = {
        "config.json": (QWEN_AWQ / "config.json").read_bytes(),
        "model-00001-of-00002.safetensors": -1,  # a link whose blob never arrived
    }
    cache_snapshot(hub, "Qwen/Qwen2.5-7B-Instruct-AWQ", REV_MAIN, files, ref="main")
    est = estimate_route(route("coder", "Qwen/Qwen2.5-7B-Instruct-AWQ"), cache_dir=hub)
    assert est.weights_bytes is None and est.unknown_reason == "weights not in the cache: llmhost pull coder"


def test_not_in_the_cache_says_what_to_run(tmp_path: Path) -> None:
    est = estimate_route(route("chat", "meta-llama/Llama-3.1-8B-Instruct"), cache_dir=tmp_path / "hub")
    assert est == RouteEstimate(None, None, None, "not in the cache: llmhost pull chat (or check --online)")
    assert est.need_bytes is None and est.engine_bytes is None


def test_online_is_refused_while_the_hub_is_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    est = estimate_route(route("chat", "meta-llama/Llama-3.1-8B-Instruct"), cache_dir=tmp_path, online=True)
    assert est.unknown_reason == "not in the cache and HF_HUB_OFFLINE is set: llmhost pull chat"


def test_online_reads_the_hub_file_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub's answer stood in for (no network here): model_info's sibling sizes and the
    config.json download are all the estimate asks of it."""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoSibling

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    total = awq_gemm_bytes(config(QWEN_AWQ))
    siblings = [
        RepoSibling("config.json", size=841),
        RepoSibling("model-00001-of-00002.safetensors", size=4_000_000_000),
        RepoSibling("model-00002-of-00002.safetensors", size=total - 4_000_000_000),
    ]
    asked: list[tuple[str, str | None, bool]] = []

    def model_info(
        self: object, repo: str, *, revision: str | None = None, files_metadata: bool = False
    ) -> Any:
        asked.append((repo, revision, files_metadata))
        return type("Info", (), {"siblings": siblings, "sha": REV_PINNED})()

    def download(repo: str, name: str, **kwargs: Any) -> str:
        assert kwargs["revision"] == REV_PINNED
        return str(QWEN_AWQ / name)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    repo = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    est = estimate_route(route("coder", repo, max_model_len=8192), cache_dir=tmp_path, online=True)
    assert asked == [(repo, None, True)]
    assert est.weights_bytes == total and est.source == f"the Hugging Face Hub ({repo})"


# ---- diffusion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """The PipelineConfig fields the estimate reads, with the two being added for issue 11."""

    torch_dtype: str = "auto"
    max_edge: int = 1024
    enable_tiling: bool = False
    enable_safety_checker: bool = True
    revision: str | None = None
    text_encoder_3: bool = True
    offload: str = "none"


def safetensors(path: Path, dtype: str, numel: int) -> int:
    """A safetensors file with a real header (one tensor) and sparse data; returns its size."""
    width = {"F16": 2, "F32": 4}[dtype]
    header = json.dumps(
        {"weight": {"dtype": dtype, "shape": [numel], "data_offsets": [0, numel * width]}}
    ).encode()
    size = 8 + len(header) + numel * width
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(size)
    return size


# SD 3.5 Medium's parts, parameters: MMDiT-X 2.47B, CLIP-L 124M, CLIP-G 695M, T5-XXL
# encoder 4.76B, VAE 84M (stored here in fp32, to check the rescaling to fp16).
SD35 = {"transformer": 2_470_000_000, "text_encoder": 124_000_000, "text_encoder_2": 695_000_000}
T5_PARAMS = 4_760_000_000
VAE_PARAMS = 84_000_000
T5_XXL = {"model_type": "t5", "num_layers": 24, "d_model": 4096, "d_ff": 10240}


def sd35_dir(root: Path) -> Path:
    model = root / "sd3.5-medium"
    index = {
        "_class_name": "StableDiffusion3Pipeline",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    }
    for name, params in SD35.items():
        safetensors(model / name / "model.safetensors", "F16", params)
        index[name] = ["x", "y"]
    safetensors(model / "text_encoder_3" / "model-00001-of-00002.safetensors", "F16", T5_PARAMS // 2)
    safetensors(model / "text_encoder_3" / "model-00002-of-00002.safetensors", "F16", T5_PARAMS // 2)
    (model / "text_encoder_3" / "config.json").write_text(json.dumps(T5_XXL))
    safetensors(model / "vae" / "diffusion_pytorch_model.safetensors", "F32", VAE_PARAMS)
    safetensors(model / "vae" / "diffusion_pytorch_model.fp16.safetensors", "F16", VAE_PARAMS)
    (model / "transformer" / "config.json").write_text(
        json.dumps({"num_attention_heads": 24, "attention_head_dim": 64})
    )
    # A single-file checkpoint beside the components: diffusers does not load it.
    safetensors(model / "sd3.5_medium.safetensors", "F16", 1000)
    for name in ("text_encoder_3", "vae", "tokenizer", "tokenizer_2", "tokenizer_3"):
        index[name] = ["x", "y"]
    (model / "model_index.json").write_text(json.dumps(index))
    return model


def vision(model: Path, **pipeline: Any) -> RouteConfig:
    base = RouteConfig.model_validate({"name": "vision", "kind": "diffusion", "model": str(model)})
    return base.model_copy(update={"pipeline": Pipeline(**pipeline)})


def test_sd35_medium_whole_is_about_18_gb(tmp_path: Path) -> None:
    model = sd35_dir(tmp_path)
    est = estimate_route(vision(model))
    header = 8 + len(json.dumps({"weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}))
    wo_fp32 = 24 * 10240 * 4096 * 2  # T5's `wo` stays fp32: 2 more bytes per parameter
    fp16 = 2 * (sum(SD35.values()) + T5_PARAMS + VAE_PARAMS)
    assert est.weights_bytes is not None
    assert abs(est.weights_bytes - (fp16 + wo_fp32)) < 10 * header  # the VAE's fp32 file counted as fp16
    assert abs(est.weights_bytes / 1e9 - 18) < 0.5  # [sd35]
    assert est.kv_cache_bytes is None and est.overhead_bytes is not None
    activations = est.overhead_bytes - figures.CUDA_CONTEXT_BYTES
    assert activations == 6 * 128 * 1024 * 1024 * 2 + 2 * (4096 + 333) * 1536 * 16 * 2
    assert verdict(est.need_bytes, 16 * GIB) == "does not fit"


def test_sd35_options_that_fit_16_gb(tmp_path: Path) -> None:
    model = sd35_dir(tmp_path)
    whole = estimate_route(vision(model))
    no_t5 = estimate_route(vision(model, text_encoder_3=False))
    by_model = estimate_route(vision(model, offload="model"))
    sequential = estimate_route(vision(model, offload="sequential"))
    assert whole.weights_bytes is not None and no_t5.weights_bytes is not None
    t5_on_gpu = whole.weights_bytes - no_t5.weights_bytes
    assert abs(t5_on_gpu - (2 * T5_PARAMS + 24 * 10240 * 4096 * 2)) < 1000  # ~9.5 GB + fp32 wo
    assert by_model.weights_bytes == t5_on_gpu  # the largest part on the GPU at a time
    assert sequential.weights_bytes == figures.SEQUENTIAL_OFFLOAD_BYTES
    for est in (no_t5, by_model, sequential):
        assert verdict(est.need_bytes, 16 * GIB) == "fits"
    tiled = estimate_route(vision(model, enable_tiling=True))
    assert tiled.overhead_bytes is not None and whole.overhead_bytes is not None
    assert whole.overhead_bytes - tiled.overhead_bytes == 6 * 128 * (1024 * 1024 - 512 * 512) * 2


# ---- llmhost check --gpu-memory -----------------------------------------------------------


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    awq = awq_dir(tmp_path)
    path = tmp_path / "models.toml"
    path.write_text(
        f"""
[host]
policy = "fit"
[routes.coder]
kind = "llm"
model = "{awq}"
served_names = ["coder-awq"]
[routes.coder.engine]
max_model_len = 8192
[routes.agent]
kind = "llm"
model = "{awq}"
served_names = ["agent-awq"]
[routes.agent.engine]
max_model_len = 4096
enforce_eager = true
[routes.coderslow]
kind = "llm"
model = "{DSV2}"
[routes.coderslow.engine]
max_model_len = 4096
[routes.chat]
kind = "llm"
model = "meta-llama/Llama-3.1-8B-Instruct"
"""
    )
    return path


def line_of(out: str, name: str) -> str:
    """The route's row in the fit table (the route table above it starts with names too)."""
    fit = out[out.index("Fit estimate for") :]
    return next(line for line in fit.splitlines() if line.split()[:1] == [name])


def test_check_gpu_memory_prints_a_verdict_per_route(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmhost.config import load_catalog

    assert main(["check", "--config", str(table), "--gpu-memory", "16"]) == 0
    out = capsys.readouterr().out
    assert "Fit estimate for 16.00 GiB (--gpu-memory)" in out
    routes = load_catalog(table).routes
    for name in ("coder", "agent", "coderslow"):
        est = estimate_route(routes[name])
        line = line_of(out, name)
        assert est.need_bytes is not None
        assert f"{est.need_bytes / GIB:.2f} GiB" in line and line.endswith(verdict(est.need_bytes, 16 * GIB))
    assert line_of(out, "coder").endswith("fits") and line_of(out, "coderslow").endswith("does not fit")
    assert "(8192 tok)" in line_of(out, "coder")
    assert line_of(out, "chat").endswith("unknown: not in the cache")
    assert out.count("Not in the cache: chat. `llmhost pull` fetches them") == 1  # one hint, not per row
    # Two AWQ engines need more than 90% of 16 GiB together; on 24 GiB they stay side by side.
    assert "no two routes fit side by side" in out
    assert main(["check", "--config", str(table), "--gpu-memory", "24"]) == 0
    assert "  coder + agent: " in capsys.readouterr().out


def test_check_uses_the_gpu_nvml_sees(
    table: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(estimate, "detected_gpu_bytes", lambda: (None, "NVML is unavailable (no driver)"))
    assert main(["check", "--config", str(table)]) == 0
    out = capsys.readouterr().out
    assert "No fit estimate: no GPU seen (NVML is unavailable (no driver)); pass --gpu-memory GIB" in out
    assert "VERDICT" not in out
    monkeypatch.setattr(
        estimate, "detected_gpu_bytes", lambda: (int(15.99 * GIB), "NVIDIA GeForce RTX 4080 (NVML)")
    )
    assert main(["check", "--config", str(table)]) == 0
    out = capsys.readouterr().out
    assert "Fit estimate for 15.99 GiB (NVIDIA GeForce RTX 4080 (NVML))" in out
    assert line_of(out, "coder").endswith("fits")


def test_a_model_that_is_neither_a_directory_nor_a_repo_id(tmp_path: Path) -> None:
    missing = estimate_route(route("coder", tmp_path / "nowhere"))
    assert missing.unknown_reason == f"{tmp_path / 'nowhere'} is not a model directory"
    bad = estimate_route(route("coder", "not a repo id!"), cache_dir=tmp_path)
    assert (
        bad.unknown_reason is not None
        and "neither a directory nor a Hugging Face repo id" in bad.unknown_reason
    )


def test_check_refuses_a_gpu_size_of_zero(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(table), "--gpu-memory", "0"]) == 2
    assert "--gpu-memory is the GPU's size in GiB" in capsys.readouterr().err
