"""What the fit-estimate tests share: the real configs in tests/fixtures/, routes on them,
parameter counts derived from the architecture (independent of llmhost.estimate), and
an AWQ checkpoint laid out as sparse shard files.

The published figures these are checked against are listed in tests/estimate/test_llm.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmhost.config import RouteConfig

FIXTURES = Path(__file__).parents[1] / "fixtures"
QWEN = FIXTURES / "qwen2.5-7b-instruct"
QWEN_AWQ = FIXTURES / "qwen2.5-7b-instruct-awq"
LLAMA = FIXTURES / "llama-3.1-8b-instruct"
DSV2 = FIXTURES / "deepseek-v2-lite"
SHIPPED = FIXTURES / "shipped"
QWEN_BF16 = 15_231_233_024  # Qwen/Qwen2.5-7B-Instruct's index: total_size
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


def model_dir(root: Path, c: dict[str, Any], total_size: int) -> Path:
    """A model directory with its config.json and an index naming the weights' total."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(c))
    index = {"metadata": {"total_size": total_size}, "weight_map": {}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    with (root / "model-00001-of-00001.safetensors").open("wb") as handle:
        handle.truncate(1)  # a shard must exist; the index's total is what counts
    return root


def linears(c: dict[str, Any]) -> list[tuple[int, int]]:
    """(in, out) of q, k, v, o, gate, up, down in every decoder layer."""
    h, inter = c["hidden_size"], c["intermediate_size"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    return [(h, q), (h, kv), (h, kv), (q, h), (h, inter), (h, inter), (inter, h)] * c["num_hidden_layers"]


def other_params(c: dict[str, Any], qkv_bias: bool) -> int:
    """Embeddings, lm_head, the two norms per layer and the final one, q/k/v biases."""
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    bias = (c["num_attention_heads"] + 2 * c["num_key_value_heads"]) * hd if qkv_bias else 0
    return int(2 * c["vocab_size"] * h + layers * (2 * h + bias) + h)
