"""Will a route fit on the GPU? An estimate from config files, before anything downloads or loads.

`llmhost check --gpu-memory GIB` prints it per route. For the host's memory sizing
(llmhost.lifecycle.sizing, policy "fit"): `RouteEstimate.need_bytes` is what a route
takes on the card, engine CUDA context included; `RouteEstimate.engine_bytes` leaves the
context out, which is what vLLM's `gpu_memory_utilization` budget has to cover.

An LLM route needs, in one vLLM engine process:

* **weights**: the safetensors index's `metadata.total_size`, else the sum of the
  `*.safetensors` files, read from the local model directory or the Hugging Face cache
  (or, with `online=True`, from the Hub's file metadata); rescaled when vLLM loads an
  unquantized fp32 checkpoint as 16-bit (its `dtype="auto"`).
* **KV cache for one sequence of `max_model_len` tokens**: the least vLLM needs to start
  at all (`vllm/v1/core/kv_cache_utils.py`, `check_enough_kv_cache_memory`: "To serve at
  least one request with the model's max seq len ... KV cache is needed"). With more
  memory vLLM gives the KV cache the rest; that is concurrency, not a requirement.
* **overhead**: the engine's CUDA context, CUDA graphs, activations and sampler at the
  profile run's peak, and memory outside torch's allocator (numbers and their sources
  below).

A diffusion route needs its components' weights (at the load dtype), the activations of
one image at `max_edge`, and the host process's CUDA context; with diffusers' model
offload only the largest component is on the GPU at a time, with sequential offload
only a layer or so.

Pure where it can be: parsing, arithmetic and verdicts take dicts and numbers. Reading
the cache uses huggingface_hub (no torch, no vLLM: `llmhost check` stays fast).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, Protocol

from llmhost.config import RouteConfig
from llmhost.gpu import GIB

MIB = 1024**2

# ---- overhead figures, and where each comes from ------------------------------------------

# CUDA context of one process (driver state, kernel images, cuBLAS workspace). Published
# figures range from 128-256 MiB with CUDA 12's lazy module loading (invoke-ai/InvokeAI
# PR #9447, "a CUDA context (~128-256 MiB of VRAM per GPU, size varies by GPU/driver)")
# to 781 MB for an eagerly loaded PyTorch context (pytorch/pytorch#34323). vLLM adds its
# own kernels (FlashAttention, Marlin, Triton); 512 MiB is the middle, on the safe side of
# the CUDA 12 figure. Each vLLM engine runs in its own process and pays it once.
CUDA_CONTEXT_BYTES = 512 * MIB
# CUDA graphs captured at start (off with enforce_eager). vLLM 0.32 profiles them
# (vllm/v1/worker/gpu_worker.py, `profile_cudagraph_memory`); measured 0.48 GiB for
# Qwen2.5-7B-Instruct-AWQ on an RTX 4080 16 GB under WSL2, vLLM 0.26, default capture
# sizes (akiyax/kvcache-lab, docs/phase1-baseline.md: "0.48 CUDAGraph").
CUDA_GRAPH_BYTES = 512 * MIB
# Memory outside torch's allocator inside the engine (NCCL, cuBLAS handles): 0.06 GiB in
# the same measurement ("0.06 non-torch").
NON_TORCH_BYTES = 64 * MIB
# The profile run (vllm/v1/worker/gpu_model_runner.py, `profile_run`) runs one forward
# pass of max_num_batched_tokens tokens, then the sampler on max_num_seqs rows of logits
# (`_dummy_sampler_run`: fp32 logits, top-k/top-p sorting: values, int64 indices,
# probabilities). Its peak is what vLLM reserves for activations. Per token of the
# forward pass: the residual stream, normed input and attention in/out (~4 x hidden) and
# the MLP's gate/up and activation (3 x intermediate) at the model dtype; per logit of
# the sampler: 20 bytes (4 fp32 + 8 int64 + 4 fp32 + 4 fp32). For Qwen2.5-7B at vLLM's
# defaults this gives 0.28 + 0.73 = 1.00 GiB against the 1.04 GiB "peak activation"
# measured in the run above.
SAMPLER_BYTES_PER_LOGIT = 20
ACTIVATION_HIDDEN_FACTOR = 4
ACTIVATION_INTERMEDIATE_FACTOR = 3
# vLLM's defaults for a GPU under 70 GiB when not built by the `LLM` class
# (vllm/engine/arg_utils.py, `get_batch_defaults`; vllm/config/scheduler.py:
# DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048) and DEFAULT_MAX_NUM_SEQS = 256.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
DEFAULT_MAX_NUM_SEQS = 256
# vLLM's default KV block size (vllm/config/cache.py, DEFAULT_BLOCK_SIZE). The KV cache is
# allocated in whole blocks, and the block pool holds one null block back
# (kv_cache_utils.py, `_pool_bytes_per_block` in `check_enough_kv_cache_memory`).
DEFAULT_BLOCK_SIZE = 16

# Diffusion: the VAE decoder's last up-blocks work at full resolution with 128 channels
# (SD3/SDXL AutoencoderKL, block_out_channels[0] = 128); about six such fp16 feature maps
# are alive at once at the peak (resnet input, two convolutions, the norm, the skip, the
# upsampled output). enable_tiling decodes 512x512 tiles instead.
VAE_LIVE_MAPS = 6
VAE_CHANNELS = 128
VAE_TILE_EDGE = 512
# The denoiser runs a batch of two (classifier-free guidance); per token and layer a
# transformer keeps ~16 x hidden values alive (q, k, v, attention output, the 4x MLP
# and its activation, residual, norms). SD3 patchifies the 8x-downsampled latent in 2x2
# patches: edge^2 / 256 image tokens, plus ~333 text tokens (77 CLIP + 256 T5).
DIT_LIVE_FACTOR = 16
DIT_TEXT_TOKENS = 333
# Sequential CPU offload moves one submodule at a time to the GPU: the largest single
# layer (T5-XXL's feed-forward, ~0.2 GB in fp16) plus working memory.
SEQUENTIAL_OFFLOAD_BYTES = 1 * GIB

# Verdicts. "fits" leaves a tenth of the card free: on a 16 GB card that is 1.6 GiB, what
# the Windows desktop and WSL2 hold (1-1.5 GB measured with the old stack). "tight"
# fits only on a card nothing else uses. Above the card: "does not fit".
TIGHT_FRACTION = 0.90

Verdict = Literal["fits", "tight", "does not fit", "unknown"]

log = logging.getLogger(__name__)

# ---- the result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteEstimate:
    """Estimated GPU memory of one route, in bytes. None where it cannot be told."""

    weights_bytes: int | None
    kv_cache_bytes: int | None
    overhead_bytes: int | None
    unknown_reason: str | None = None
    max_model_len: int | None = None  # the tokens the KV cache figure is for (llm routes)
    context_bytes: int = CUDA_CONTEXT_BYTES  # the part of overhead that is the CUDA context
    source: str | None = None  # where the figures were read: a path or "the Hub"

    @property
    def need_bytes(self) -> int | None:
        """Weights + KV cache + overhead; None when the weights are unknown."""
        if self.weights_bytes is None:
            return None
        return self.weights_bytes + (self.kv_cache_bytes or 0) + (self.overhead_bytes or 0)

    @property
    def engine_bytes(self) -> int | None:
        """The need less the engine's own CUDA context: what vLLM's gpu_memory_utilization
        budget must cover (vLLM measures free memory after creating its context)."""
        need = self.need_bytes
        return None if need is None else max(need - self.context_bytes, 0)


def verdict(need_bytes: int | None, gpu_bytes: int) -> Verdict:
    """fits: need <= 90% of the card; tight: up to the whole card; else does not fit."""
    if need_bytes is None:
        return "unknown"
    if need_bytes <= TIGHT_FRACTION * gpu_bytes:
        return "fits"
    if need_bytes <= gpu_bytes:
        return "tight"
    return "does not fit"


def resident_together(needs: Mapping[str, int | None], gpu_bytes: int) -> list[tuple[str, ...]]:
    """The largest groups of routes (two or more) whose needs add up to a "fits" verdict.

    For policy "fit": these can stay loaded side by side. Maximal groups only (a group is
    left out when a larger listed group contains it); routes with unknown needs are left
    out. Exhaustive up to 14 known routes, greedy by size above that.
    """
    budget = TIGHT_FRACTION * gpu_bytes
    known = sorted((name for name, need in needs.items() if need is not None), key=lambda n: needs[n] or 0)
    sizes = {name: needs[name] or 0 for name in known}
    if len(known) > 14:
        group: list[str] = []
        for name in known:
            if sum(sizes[n] for n in group) + sizes[name] <= budget:
                group.append(name)
        return [tuple(group)] if len(group) >= 2 else []
    fitting = [
        set(combo)
        for size in range(len(known), 1, -1)
        for combo in combinations(known, size)
        if sum(sizes[n] for n in combo) <= budget
    ]
    maximal = [g for g in fitting if not any(g < other for other in fitting)]
    order = {name: i for i, name in enumerate(needs)}
    return [tuple(sorted(g, key=order.__getitem__)) for g in maximal]


# ---- config.json arithmetic (pure) --------------------------------------------------------

_DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
}


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config (multimodal wrappers nest it)."""
    nested = config.get("text_config")
    return nested if isinstance(nested, Mapping) else config


def _checkpoint_dtype(config: Mapping[str, Any]) -> str | None:
    value = config.get("torch_dtype") or config.get("dtype") or text_config(config).get("torch_dtype")
    return str(value) if value else None


def load_dtype_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """Bytes per element of the dtype vLLM runs the model in.

    vLLM's dtype "auto" uses the checkpoint's 16-bit dtype and turns float32 into a
    16-bit one on GPUs (vllm/config/model.py, `_get_and_verify_dtype`): 2 bytes unless
    [engine] dtype asks for float32.
    """
    dtype = str(engine.get("dtype", "auto")).lower()
    return 4 if _DTYPE_BYTES.get(dtype) == 4 else 2


def kv_dtype_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """Bytes per KV element: kv_cache_dtype "auto" follows the model dtype; fp8* is 1 byte."""
    kv = str(engine.get("kv_cache_dtype", "auto")).lower()
    if kv.startswith("fp8"):
        return 1
    if kv in _DTYPE_BYTES:
        return _DTYPE_BYTES[kv]
    return load_dtype_bytes(config, engine)


def is_mla(config: Mapping[str, Any]) -> bool:
    """DeepSeek-V2/V3-style multi-head latent attention (vLLM: `is_deepseek_mla`)."""
    return text_config(config).get("kv_lora_rank") is not None and not os.environ.get("VLLM_MLA_DISABLE")


def kv_bytes_per_token(config: Mapping[str, Any], dtype_bytes: int) -> int:
    """KV cache bytes for one token across all layers.

    Standard attention: K and V per layer, per KV head: 2 x layers x kv_heads x head_dim.
    MLA: vLLM caches the compressed latent plus the decoupled RoPE key, one vector per
    token and layer shared by all heads: layers x (kv_lora_rank + qk_rope_head_dim).
    Read from vLLM 0.32: vllm/model_executor/layers/attention/mla_attention.py sets
    `head_size = kv_lora_rank + qk_rope_head_dim` and `get_kv_cache_spec` returns an
    `MLAAttentionSpec(num_kv_heads=1, head_size=...)`, whose `head_size_v` is 0
    (vllm/v1/kv_cache_interface.py: "MLA stores a single latent vector per state; there
    is no separate V"), so `page_size_bytes` = block_size x head_size x dtype bytes.
    """
    text = text_config(config)
    layers = int(text["num_hidden_layers"])
    if is_mla(config):
        return layers * (int(text["kv_lora_rank"]) + int(text.get("qk_rope_head_dim") or 0)) * dtype_bytes
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


# vllm/transformers_utils/model_arch_config_convertor.py, `derived_max_model_len_and_key`.
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# vllm/config/model.py, `_get_and_verify_max_len`: these RoPE types leave
# max_position_embeddings already scaled; any other type's `factor` multiplies it.
_PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def derived_max_model_len(config: Mapping[str, Any]) -> int | None:
    """The max_model_len vLLM derives from config.json when [engine] does not set one."""
    text = text_config(config)
    lengths = [int(text[k]) for k in _MAX_LEN_KEYS if isinstance(text.get(k), (int, float))]
    if not lengths:
        return None
    length = int(text["model_max_length"]) if text.get("model_max_length") else min(lengths)
    rope = text.get("rope_scaling") or text.get("rope_parameters")
    if isinstance(rope, Mapping):
        kind = rope.get("rope_type") or rope.get("type") or "default"
        factor = rope.get("factor")
        if kind not in _PRESCALED_ROPE and kind != "default" and factor:
            length = int(length * float(factor))
    return length


_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)")


def _tokens(value: Any) -> int | None:
    """An [engine] size as vLLM's CLI reads it (vllm/utils/argparse_utils.py,
    `human_readable_int`: "32k" = 32,000, "32K" = 32,768); None for "auto", -1 or junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        return None
    number, suffix = match.groups()
    if suffix.islower():
        return int(float(number) * 1000 ** ("kmgt".index(suffix) + 1))
    if suffix and "." not in number:
        return int(number) * 1024 ** ("KMGT".index(suffix) + 1)
    return int(number) if "." not in number else None


def max_model_len(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int | None:
    """[engine] max_model_len, else (also for "auto", which vLLM fits to the memory it
    finds) the model's full context as vLLM derives it."""
    return _tokens(engine.get("max_model_len")) or derived_max_model_len(config)


def kv_cache_bytes(config: Mapping[str, Any], engine: Mapping[str, Any], tokens: int) -> int:
    """KV cache for one sequence of `tokens`, in whole blocks plus the pool's null block."""
    block = engine.get("block_size")
    block_size = block if isinstance(block, int) and block > 0 else DEFAULT_BLOCK_SIZE
    blocks = math.ceil(tokens / block_size) + 1
    return blocks * block_size * kv_bytes_per_token(config, kv_dtype_bytes(config, engine))


def _engine_int(engine: Mapping[str, Any], key: str, default: int) -> int:
    value = engine.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def activation_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """The profile run's peak: one forward pass of max_num_batched_tokens, then the sampler."""
    text = text_config(config)
    hidden = int(text.get("hidden_size") or 0)
    intermediate = int(text.get("intermediate_size") or 4 * hidden)
    vocab = int(text.get("vocab_size") or 0)
    tokens = _engine_int(engine, "max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS)
    seqs = _engine_int(engine, "max_num_seqs", DEFAULT_MAX_NUM_SEQS)
    per_token = ACTIVATION_HIDDEN_FACTOR * hidden + ACTIVATION_INTERMEDIATE_FACTOR * intermediate
    forward = tokens * per_token * load_dtype_bytes(config, engine)
    sampler = seqs * vocab * SAMPLER_BYTES_PER_LOGIT
    return forward + sampler


def llm_overhead_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    graphs = 0 if engine.get("enforce_eager") else CUDA_GRAPH_BYTES
    return CUDA_CONTEXT_BYTES + graphs + NON_TORCH_BYTES + activation_bytes(config, engine)


def weights_at_load_dtype(total: int, config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """Checkpoint bytes rescaled to what vLLM holds on the GPU (unquantized checkpoints only)."""
    quantized = config.get("quantization_config") or text_config(config).get("quantization_config")
    if quantized:
        return total
    stored = _DTYPE_BYTES.get((_checkpoint_dtype(config) or "bfloat16").lower(), 2)
    loaded = load_dtype_bytes(config, engine)
    if str(engine.get("quantization", "")).lower() == "fp8":
        loaded = 1  # vLLM quantizes 16-bit weights to fp8 at load time
    return total * loaded // stored


# ---- where the files are ------------------------------------------------------------------


class _Files(Protocol):
    where: str

    def json(self, name: str) -> dict[str, Any] | None: ...

    def sizes(self) -> dict[str, int]: ...

    def dtype_scale(self, name: str, target_bytes: int) -> float: ...


class _Directory:
    """A model directory: a local path or a snapshot in the Hugging Face cache."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where

    def json(self, name: str) -> dict[str, Any] | None:
        try:
            value = json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def sizes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for path in self.root.rglob("*.safetensors"):
            try:
                found[path.relative_to(self.root).as_posix()] = path.stat().st_size
            except OSError:  # a cache symlink whose blob is not downloaded (yet)
                continue
        return found

    def dtype_scale(self, name: str, target_bytes: int) -> float:
        """Bytes at `target_bytes` per float element over bytes stored, from the file's
        safetensors header (8-byte length, then JSON; no tensor data is read)."""
        try:
            with (self.root / name).open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > 100 * MIB:
                    return 1.0
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return 1.0
        stored = scaled = 0
        for key, info in header.items():
            if key == "__metadata__" or not isinstance(info, dict):
                continue
            size = _ST_DTYPE_BYTES.get(str(info.get("dtype")))
            if size is None:
                continue
            numel = math.prod(int(d) for d in info.get("shape", []))
            stored += numel * size
            floating = info.get("dtype") in ("F32", "F16", "BF16", "F64")
            scaled += numel * (target_bytes if floating else size)
        return scaled / stored if stored else 1.0


_ST_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
_ST_DTYPE_BYTES |= {"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class _Hub:
    """The Hub's metadata for one revision (sizes of every file; small JSON files fetched)."""

    def __init__(self, repo: str, revision: str | None, cache_dir: Path | None) -> None:
        from huggingface_hub import HfApi

        self.repo = repo
        self.revision = revision
        self.cache_dir = cache_dir
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        self._sizes = {s.rfilename: int(s.size) for s in info.siblings or [] if s.size is not None}
        self.revision = info.sha or revision
        self.where = f"the Hugging Face Hub ({repo})"

    def json(self, name: str) -> dict[str, Any] | None:
        if name not in self._sizes:
            return None
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(self.repo, name, revision=self.revision, cache_dir=self.cache_dir)
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else None

    def sizes(self) -> dict[str, int]:
        return {name: size for name, size in self._sizes.items() if name.endswith(".safetensors")}

    def dtype_scale(self, name: str, target_bytes: int) -> float:
        return 1.0  # headers are not fetched: sizes as stored


def _revision(route: RouteConfig) -> str | None:
    if route.kind == "diffusion":
        return route.pipeline.revision
    value = route.engine.get("revision")
    return str(value) if value else None


def _cached_snapshot(repo: str, revision: str | None, cache_dir: Path | None, probe: str) -> Path | None:
    """The cache's snapshot directory of `repo` at `revision` (a branch, tag or commit)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, probe, cache_dir=cache_dir, revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1",
        "true",
        "yes",
    )


def _locate(
    route: RouteConfig, cache_dir: Path | None, online: bool, probe: str
) -> tuple[_Files | None, str | None]:
    """Where the route's files are, or why they cannot be read."""
    local = Path(route.model).expanduser()
    if local.is_dir():
        return _Directory(local, str(local)), None
    if route.model.startswith(("/", "./", "../", "~")) or local.exists():
        return None, f"{route.model} is not a model directory"
    revision = _revision(route)
    try:
        snapshot = _cached_snapshot(route.model, revision, cache_dir, probe)
    except ValueError as exc:  # huggingface_hub's HFValidationError: not a repo id
        return None, f"{route.model} is neither a directory nor a Hugging Face repo id ({exc})"
    if snapshot is not None:
        return _Directory(snapshot, f"the cache ({snapshot})"), None
    pull = f"llmhost pull {route.name}"
    if not online:
        return None, f"not in the cache: {pull} (or check --online)"
    if _offline():
        return None, f"not in the cache and HF_HUB_OFFLINE is set: {pull}"
    try:
        return _Hub(route.model, revision, cache_dir), None
    except Exception as exc:  # any Hub failure becomes the route's reason
        from llmhost.pull import explain

        return None, explain(route.model, exc, os.environ.get("HF_TOKEN"))


# ---- LLM routes ---------------------------------------------------------------------------

_INDEX = "model.safetensors.index.json"


def _llm_weights(files: _Files) -> int | None:
    index = files.json(_INDEX)
    total = (index or {}).get("metadata", {}).get("total_size") if index else None
    if isinstance(total, int) and total > 0:
        return total
    top = [size for name, size in files.sizes().items() if "/" not in name]
    return sum(top) if top else None


def estimate_llm(route: RouteConfig, files: _Files) -> RouteEstimate:
    config = files.json("config.json")
    if config is None:
        return RouteEstimate(None, None, None, f"no config.json in {files.where}", source=files.where)
    engine = route.engine
    tokens = max_model_len(config, engine)
    try:
        kv = kv_cache_bytes(config, engine, tokens) if tokens else None
        overhead = llm_overhead_bytes(config, engine)
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"config.json in {files.where} lacks what the estimate needs ({exc})"
        return RouteEstimate(None, None, None, reason, source=files.where)
    raw = _llm_weights(files)
    if raw is None:
        reason = f"no safetensors weights in {files.where}"
        if isinstance(files, _Directory) and files.where.startswith("the cache"):
            reason = f"weights not in the cache: llmhost pull {route.name}"
        return RouteEstimate(None, kv, overhead, reason, tokens, source=files.where)
    weights = weights_at_load_dtype(raw, config, engine)
    return RouteEstimate(weights, kv, overhead, None, tokens, source=files.where)


# ---- diffusion routes ---------------------------------------------------------------------

# A diffusers variant file: name.fp16.safetensors, name.fp16-00001-of-00002.safetensors.
_VARIANT = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)([.-])")
_NOT_WEIGHTS = ("scheduler", "tokenizer", "feature_extractor")


def diffusion_components(index: Mapping[str, Any], pipeline: Any) -> list[str]:
    """The model_index.json components that hold weights and will be loaded."""
    names = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[:1] == [None]:
            continue
        if name.startswith(_NOT_WEIGHTS):
            continue
        if name == "text_encoder_3" and not getattr(pipeline, "text_encoder_3", True):
            continue
        if name == "safety_checker" and not getattr(pipeline, "enable_safety_checker", True):
            continue
        names.append(name)
    return names


def _component_files(sizes: Mapping[str, int], component: str) -> dict[str, int]:
    """The files diffusers loads for one component: non-variant ones when there are any."""
    inside = {n: s for n, s in sizes.items() if n.startswith(f"{component}/") and n.count("/") == 1}
    plain = {n: s for n, s in inside.items() if not _VARIANT.search(n.rsplit("/", 1)[1])}
    return plain or inside


def _keep_fp32_bytes(config: Mapping[str, Any] | None, load_bytes: int) -> int:
    """transformers keeps T5's feed-forward output (`wo`) in fp32 whatever the dtype
    (T5PreTrainedModel._keep_in_fp32_modules = ["wo"]): the extra bytes over `load_bytes`."""
    if not config or config.get("model_type") != "t5" or load_bytes >= 4:
        return 0
    layers = int(config.get("num_layers") or 0)
    return layers * int(config.get("d_ff") or 0) * int(config.get("d_model") or 0) * (4 - load_bytes)


def diffusion_activation_bytes(max_edge: int, transformer: Mapping[str, Any] | None, tiling: bool) -> int:
    """One image at max_edge x max_edge: the VAE decode's peak, plus the denoiser's."""
    edge = min(max_edge, VAE_TILE_EDGE) if tiling else max_edge
    vae = VAE_LIVE_MAPS * VAE_CHANNELS * edge * edge * 2
    hidden = 0
    if transformer:
        heads = int(transformer.get("num_attention_heads") or 0)
        head_dim = int(transformer.get("attention_head_dim") or 0)
        hidden = heads * head_dim
    tokens = max_edge * max_edge // 256 + DIT_TEXT_TOKENS
    dit = 2 * tokens * hidden * DIT_LIVE_FACTOR * 2
    return vae + dit


def estimate_diffusion(route: RouteConfig, files: _Files) -> RouteEstimate:
    index = files.json("model_index.json")
    if index is None:
        return RouteEstimate(None, None, None, f"no model_index.json in {files.where}", source=files.where)
    pipe = route.pipeline
    load_bytes = 4 if pipe.torch_dtype == "float32" else 2  # "auto" is float16 on a GPU
    sizes = files.sizes()
    parts: dict[str, int] = {}
    for component in diffusion_components(index, pipe):
        chosen = _component_files(sizes, component)
        if not chosen:
            continue
        total = sum(size * files.dtype_scale(name, load_bytes) for name, size in chosen.items())
        parts[component] = int(total) + _keep_fp32_bytes(files.json(f"{component}/config.json"), load_bytes)
    if not parts:
        reason = f"no safetensors weights in {files.where}"
        if isinstance(files, _Directory) and files.where.startswith("the cache"):
            reason = f"weights not in the cache: llmhost pull {route.name}"
        return RouteEstimate(None, None, None, reason, source=files.where)
    transformer = files.json("transformer/config.json")
    activations = diffusion_activation_bytes(pipe.max_edge, transformer, pipe.enable_tiling)
    offload = getattr(pipe, "offload", "none")
    if offload == "sequential":
        weights = SEQUENTIAL_OFFLOAD_BYTES
    elif offload == "model":
        weights = max(parts.values())
    else:
        weights = sum(parts.values())
    return RouteEstimate(weights, None, CUDA_CONTEXT_BYTES + activations, None, source=files.where)


# ---- entry points -------------------------------------------------------------------------


def estimate_route(
    route: RouteConfig, *, cache_dir: Path | None = None, online: bool = False
) -> RouteEstimate:
    """The estimated GPU need of `route`, from its local directory, the Hugging Face cache
    (`cache_dir`, default: huggingface_hub's) or, with `online`, the Hub's metadata."""
    probe = "model_index.json" if route.kind == "diffusion" else "config.json"
    files, reason = _locate(route, cache_dir, online, probe)
    if files is None:
        return RouteEstimate(None, None, None, reason)
    try:
        if route.kind == "diffusion":
            return estimate_diffusion(route, files)
        return estimate_llm(route, files)
    except Exception as exc:  # a malformed file or a Hub error mid-way: unknown, with why
        log.debug("estimate of %s failed", route.name, exc_info=True)
        return RouteEstimate(None, None, None, f"{type(exc).__name__}: {exc}", source=files.where)


def estimate_routes(
    routes: Iterable[RouteConfig], *, cache_dir: Path | None = None, online: bool = False
) -> dict[str, RouteEstimate]:
    return {route.name: estimate_route(route, cache_dir=cache_dir, online=online) for route in routes}


def detected_gpu_bytes() -> tuple[int | None, str]:
    """Total memory of the GPU NVML sees, and a phrase naming it (or saying why none)."""
    from llmhost.gpu import open_monitor

    gpu_log = logging.getLogger("llmhost.gpu")
    level = gpu_log.level
    gpu_log.setLevel(logging.ERROR)  # open_monitor's serve-time warning is not check's business
    try:
        monitor = open_monitor()
    finally:
        gpu_log.setLevel(level)
    try:
        reading = monitor.memory()
        if reading is None:
            return None, monitor.unavailable_reason or "NVML gave no memory reading"
        return reading.total_bytes, f"{monitor.name or 'GPU'} (NVML)"
    finally:
        monitor.close()


def render(
    estimates: Mapping[str, RouteEstimate],
    gpu_bytes: int,
    gpu_label: str,
    policy: str,
) -> str:
    """The table `llmhost check` prints, one verdict per route."""
    rows = [("ROUTE", "WEIGHTS", "KV CACHE", "OVERHEAD", "NEED", "VERDICT")]
    for name, est in estimates.items():
        kv = _gib(est.kv_cache_bytes)
        if est.kv_cache_bytes is not None and est.max_model_len:
            kv += f" ({est.max_model_len} tok)"
        word: str = verdict(est.need_bytes, gpu_bytes)
        if word == "unknown":
            word = f"unknown: {est.unknown_reason or 'weights unknown'}"
        rows.append((name, _gib(est.weights_bytes), kv, _gib(est.overhead_bytes), _gib(est.need_bytes), word))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        f"Fit estimate for {gpu_bytes / GIB:.2f} GiB ({gpu_label}); fits: need <= "
        f"{TIGHT_FRACTION:.0%} of it, tight: up to all of it. KV cache: one sequence of max_model_len.",
        *(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
            for row in rows
        ),
    ]
    if policy == "fit":
        groups = resident_together({n: e.need_bytes for n, e in estimates.items()}, gpu_bytes)
        if groups:
            lines.append("Can stay resident together (policy fit):")
            for group in groups:
                total = sum(estimates[n].need_bytes or 0 for n in group)
                lines.append(f"  {' + '.join(group)}: {total / GIB:.2f} GiB")
        else:
            lines.append("Can stay resident together (policy fit): no two routes fit side by side.")
    return "\n".join(lines)


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"
