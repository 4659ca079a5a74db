"""The tiny model set (llmhost.tiny_models.models): its layout in the cache, a second
ensure that builds nothing, and engine arguments that are plain models.toml values."""

from __future__ import annotations

from pathlib import Path

from llmhost.tiny_models import MARKER_NAME, TinyModels, ensure_tiny_models, tiny_engine_args


def _file_stamps(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_layout_and_second_build_is_skipped(tiny: TinyModels, cache_dir: Path) -> None:
    assert tiny.llm == cache_dir / "qwen-tiny"
    assert tiny.llm_alt == cache_dir / "qwen-tiny-alt"
    assert tiny.sd3 == cache_dir / "sd3-tiny"
    for path in (tiny.llm, tiny.llm_alt, tiny.sd3):
        assert (path / MARKER_NAME).is_file()
    assert (tiny.sd3 / "model_index.json").is_file()
    assert not list(cache_dir.glob(".*.tmp-*")), "temporary build directories left behind"

    before = {p: _file_stamps(p) for p in (tiny.llm, tiny.llm_alt, tiny.sd3)}
    again = ensure_tiny_models(cache_dir)
    assert again == tiny
    after = {p: _file_stamps(p) for p in (tiny.llm, tiny.llm_alt, tiny.sd3)}
    assert after == before


def test_engine_args_are_plain_toml_values() -> None:
    args = tiny_engine_args()
    assert args["dtype"] == "float32"
    assert args["enforce_eager"] is True
    assert all(isinstance(v, (str, int, float, bool)) for v in args.values())

    from vllm.engine.arg_utils import AsyncEngineArgs

    fields = set(AsyncEngineArgs.__dataclass_fields__)
    assert set(args) <= fields, set(args) - fields
