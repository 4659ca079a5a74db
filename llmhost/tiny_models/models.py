"""The set of tiny models the tests and the demo use, and the engine arguments they run under."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmhost.tiny_models.cache import default_cache_dir
from llmhost.tiny_models.llm import build_tiny_llm
from llmhost.tiny_models.sd3 import build_tiny_sd3
from llmhost.tiny_models.tokenizer import LLM_MAX_POSITIONS

_MIB = 1024 * 1024


@dataclass(frozen=True)
class TinyModels:
    """Paths of the built tiny models."""

    llm: Path
    llm_alt: Path
    sd3: Path


def ensure_tiny_models(cache_dir: Path | None = None) -> TinyModels:
    """Build (once, cached) two distinct tiny LLMs and the tiny SD3 pipeline.

    ``llm`` has hidden size 64 (head_dim 32); ``llm_alt`` has another seed and hidden
    size 128 (head_dim 64), so a swap between the two is visible in logs and outputs.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return TinyModels(
        llm=build_tiny_llm(root / "qwen-tiny", seed=0, hidden_size=64),
        llm_alt=build_tiny_llm(root / "qwen-tiny-alt", seed=1, hidden_size=128),
        sd3=build_tiny_sd3(root / "sd3-tiny", seed=0),
    )


def tiny_engine_args() -> dict[str, object]:
    """vLLM engine arguments under which these tiny models run on the CPU backend.

    ``dtype="float32"``: ``auto`` would turn the weights into bf16. ``enforce_eager``:
    no torch.compile / graph capture (slow to start, nothing to gain). An explicit
    ``kv_cache_memory_bytes`` (64 MiB, about 130k tokens for ``llm``): without it the
    CPU worker reserves ``gpu_memory_utilization`` (0.9) of the machine's RAM, and with
    it and eager mode vLLM also skips its warm-up pass. The context matches the models'
    32k positions, since real clients send long prompts. All values are plain TOML
    scalars, to sit under ``[routes.X.engine]``.
    """
    return {
        "dtype": "float32",
        "enforce_eager": True,
        "max_model_len": LLM_MAX_POSITIONS,
        "kv_cache_memory_bytes": 64 * _MIB,
    }
