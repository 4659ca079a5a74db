"""`llmhost pull`'s choice of files (pure: listings in, names out)."""

from __future__ import annotations

import pytest

from llmhost.config import PipelineConfig
from llmhost.pull import human_size
from llmhost.pull.selection import diffusion_files, llm_files
from tests.hub import EMBEDDING_FILES, LLM_FILES, SD3_MODEL_INDEX, SD35_MEDIUM_SIZES, ST_MODULES

WITHOUT_T5 = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
]
T5 = [
    "text_encoder_3/config.json",
    "text_encoder_3/model-00001-of-00002.safetensors",
    "text_encoder_3/model-00002-of-00002.safetensors",
    "text_encoder_3/model.safetensors.index.json",
    "tokenizer_3/special_tokens_map.json",
    "tokenizer_3/spiece.model",
    "tokenizer_3/tokenizer.json",
    "tokenizer_3/tokenizer_config.json",
]


def total(names: list[str]) -> int:
    return sum(SD35_MEDIUM_SIZES[n] or 0 for n in names)


def test_sd35_medium_without_t5_is_the_diffusers_components_only() -> None:
    chosen = diffusion_files(list(SD35_MEDIUM_SIZES), SD3_MODEL_INDEX, PipelineConfig(text_encoder_3=False))
    assert chosen == WITHOUT_T5
    # Not the top-level checkpoint, ComfyUI's text_encoders/, the fp16 variants, the docs.
    top_level = [n for n in chosen if "/" not in n]
    assert top_level == ["model_index.json"]
    assert not [n for n in chosen if n.startswith("text_encoders/") or ".fp16" in n]
    # The Hub's listing: 4.94 + 1.39 + 0.247 + 0.168 GB of weights and a few MB of tokenizers.
    assert human_size(total(chosen)) == "6.75 GB"


def test_sd35_medium_with_t5_adds_its_encoder_and_tokenizer() -> None:
    chosen = diffusion_files(list(SD35_MEDIUM_SIZES), SD3_MODEL_INDEX, PipelineConfig(text_encoder_3=True))
    assert chosen == sorted(WITHOUT_T5 + T5)
    assert human_size(total(chosen)) == "16.27 GB"


def test_pickled_weights_only_where_a_component_has_no_safetensors() -> None:
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}
    index |= {"safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}
    names = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.safetensors",
        "safety_checker/config.json",
        "safety_checker/pytorch_model.bin",
        "v1-5-pruned.ckpt",
    ]
    # The safety checker has only a .bin: diffusers then takes the pickled files everywhere.
    assert diffusion_files(names, index, PipelineConfig()) == [
        "model_index.json",
        "safety_checker/config.json",
        "safety_checker/pytorch_model.bin",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
    ]
    # Without the checker (llmhost passes safety_checker=None), safetensors it is.
    assert diffusion_files(names, index, PipelineConfig(enable_safety_checker=False)) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    ]


def test_llm_takes_the_indexed_safetensors_and_the_small_files() -> None:
    shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert llm_files(LLM_FILES, weight_map=shards) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    # A safetensors file the index does not name (a consolidated duplicate) is left out.
    assert "model.safetensors" not in llm_files([*LLM_FILES, "model.safetensors"], weight_map=shards)


def test_llm_formats_as_vllm_picks_them() -> None:
    pickled = ["config.json", "pytorch_model.bin", "training_args.bin", "tokenizer.model", "README.md"]
    assert llm_files(pickled) == ["config.json", "pytorch_model.bin", "tokenizer.model"]
    assert llm_files(pickled, "safetensors") == ["config.json", "tokenizer.model"]
    mistral = ["params.json", "tekken.json", "consolidated.safetensors", "model-00001-of-00001.safetensors"]
    assert llm_files(mistral) == ["consolidated.safetensors", "params.json", "tekken.json"]
    # load_format "hf" without an index: every top-level safetensors file, as vLLM globs them.
    assert llm_files(mistral, "hf") == sorted(mistral)


# What vLLM reads of the Qwen3-Embedding-like repository (tests/hub.py): the model and its
# small files at the top, sentence-transformers' three JSON files, the pooling config.
EMBEDDING_SELECTION = [
    "1_Pooling/config.json",
    "config.json",
    "config_sentence_transformers.json",
    "generation_config.json",
    "merges.txt",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
]


def test_sentence_transformers_embedder_adds_its_pooling_config_not_the_onnx_copies() -> None:
    assert llm_files(EMBEDDING_FILES, modules=ST_MODULES) == EMBEDDING_SELECTION
    # Without modules.json's content the module folders are unknown: the top level only.
    assert llm_files(EMBEDDING_FILES) == [n for n in EMBEDDING_SELECTION if "/" not in n]
    # modules.json in the wrapped form vLLM's Dense reader also accepts.
    assert llm_files(EMBEDDING_FILES, modules={"modules": ST_MODULES}) == EMBEDDING_SELECTION


def test_a_dense_projection_brings_its_weights_in_the_format_vllm_tries_first() -> None:
    modules = [
        *ST_MODULES[:2],
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Dense/", "type": "pylate.models.Dense.Dense"},
        {"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    dense = [
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
        "2_Dense/pytorch_model.bin",  # a duplicate: vLLM loads model.safetensors when present
        "2_Dense/onnx/model.onnx",
        "3_Dense/config.json",
        "3_Dense/pytorch_model.bin",
    ]
    assert [n for n in llm_files([*EMBEDDING_FILES, *dense], modules=modules) if "/" in n] == [
        "1_Pooling/config.json",
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
        "3_Dense/config.json",
        "3_Dense/pytorch_model.bin",
    ]


@pytest.mark.parametrize(
    "modules",
    [
        None,
        {},
        "x",
        [1, None],
        [{"path": 3}],
        [{"path": "../x"}],
        [{"type": "sentence_transformers.models.Dense"}],
    ],
)
def test_a_malformed_modules_json_adds_nothing(modules: object) -> None:
    assert llm_files(EMBEDDING_FILES, modules=modules) == [n for n in EMBEDDING_SELECTION if "/" not in n]
