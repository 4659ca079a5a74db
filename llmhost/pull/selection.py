"""Which files of a repository a route loads: what `llmhost pull` downloads.

Pure functions over the repository's file names (and the JSON files that decide): the
Hub's listing goes in, the names to fetch come out. Each follows the loader that will
read the files, so that after `llmhost pull` the first load downloads nothing more:

* a diffusion route: diffusers' own choice (`DiffusionPipeline.download`, diffusers
  0.42, no variant, safetensors preferred) with the components llmhost passes as None
  (`text_encoder_3`/`tokenizer_3` when `text_encoder_3 = false`, a disabled
  `safety_checker`) left out. A single-file checkpoint at the top (`sd3.5_medium.safetensors`),
  ComfyUI's `text_encoders/` and the fp16 variants are not what diffusers reads.
* an llm route: vLLM's default loader (`model_executor/model_loader/default_loader.py`
  and `weight_utils.download_weights_from_hf`, vLLM 0.32): the top-level weights of one
  format (the safetensors index's shards, else `*.safetensors`, else `*.bin`, else `*.pt`;
  Mistral's `consolidated*.safetensors` when present), plus the small top-level files the
  config, tokenizer and generation config come from. No `original/` copy, no `*.pth`,
  GGUF or second format. A sentence-transformers repository (an embedding model with
  `modules.json`) adds what vLLM reads of the modules it names (`transformers_utils/config.py`
  `get_pooling_config`, `try_get_dense_modules`): the Pooling module's `config.json` (the
  pooling type), each Dense projection's `config.json` and weights; not the ONNX or
  OpenVINO copies in their own folders.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

# ---- diffusion routes: diffusers' DiffusionPipeline.download -------------------------------

# diffusers/pipelines/pipeline_loading_utils.py: the weight file names it knows (diffusers',
# transformers', ONNX's) and the extensions that make a folder a model folder.
_WEIGHT_PREFIXES = ("diffusion_pytorch_model", "model", "weights", "pytorch_model")
_WEIGHT_SUFFIXES = ("bin", "safetensors", "onnx", "pb")
_MODEL_FILE_EXTENSIONS = ("bin", "safetensors", "onnx", "pb", "flashpack")
_SHARD = r"\d{5}-of-\d{5}"
_NON_VARIANT_FILE = re.compile(
    rf"({'|'.join(_WEIGHT_PREFIXES)})(-{_SHARD})?\.({'|'.join(_WEIGHT_SUFFIXES)})$"
)
_NON_VARIANT_INDEX = re.compile(
    rf"({'|'.join(_WEIGHT_PREFIXES)})\.({'|'.join(_WEIGHT_SUFFIXES)})\.index\.json"
)
# Files diffusers always allows (diffusers/utils/constants.py, pipeline_utils.py).
_ALWAYS = ("scheduler_config.json", "config.json", "model_index.json", "pipeline.py")
_TRANSFORMERS_AUX = (
    "chat_template.jinja",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def _component(name: str) -> str:
    """The folder of a `folder/file` name; "" for top-level files and deeper paths."""
    parts = name.split("/")
    return parts[0] if len(parts) == 2 else ""


def skipped_components(index: Mapping[str, Any], pipeline: Any) -> set[str]:
    """The components llmhost passes as None to from_pretrained (llmhost.backends.diffusion.load):
    diffusers then neither loads nor downloads them."""
    skipped: set[str] = set()
    if not getattr(pipeline, "text_encoder_3", True) and _named(index, "text_encoder_3"):
        skipped |= {"text_encoder_3", "tokenizer_3"}
    if not getattr(pipeline, "enable_safety_checker", True) and _named(index, "safety_checker"):
        skipped.add("safety_checker")
    return skipped


def _named(index: Mapping[str, Any], name: str) -> bool:
    entry = index.get(name)
    return isinstance(entry, list) and any(part is not None for part in entry)


def _safetensors_everywhere(names: Iterable[str], model_folders: set[str], skipped: set[str]) -> bool:
    """diffusers' is_safetensors_compatible (no variant): every model folder it loads has a
    non-variant safetensors weight file, so the pickled ones are ignored."""
    bases: dict[str, list[str]] = {}
    for name in names:
        folder = _component(name)
        if name.endswith(_MODEL_FILE_EXTENSIONS) and folder in model_folders and folder not in skipped:
            bases.setdefault(folder, []).append(posixpath.basename(name))
    if not bases:  # a flat repository: the top level decides
        top = [n for n in names if "/" not in n and _NON_VARIANT_FILE.match(n)]
        return any(n.endswith(".safetensors") for n in top)
    return all(
        any(b.endswith(".safetensors") for b in found if _NON_VARIANT_FILE.match(b))
        for found in bases.values()
    )


def _custom_code(index: Mapping[str, Any], folder: str) -> str:
    """`folder/<module>.py` for a component whose class lives in the repository."""
    entry = index.get(folder)
    module = entry[0] if isinstance(entry, list) and entry else None
    return f"{folder}/{module}.py" if isinstance(module, str) else ""


def diffusion_files(names: Collection[str], index: Mapping[str, Any], pipeline: Any) -> list[str]:
    """The files diffusers downloads to load the pipeline of `index` (model_index.json), as
    llmhost loads it: the named component folders, without the ones passed as None."""
    ignored_names = index.get("_ignore_files") or []
    files = [n for n in names if n not in ignored_names]
    folders = [k for k, v in index.items() if isinstance(v, list) and k != "_class_name"]
    skipped = skipped_components(index, pipeline)
    model_folders = {
        _component(n) for n in files if n.endswith(_MODEL_FILE_EXTENSIONS) and _component(n) in folders
    }
    if _safetensors_everywhere(files, model_folders, skipped):
        ignore = ["*.bin", "*.msgpack", "*.onnx", "*.pb"]
    else:
        ignore = ["*.safetensors", "*.msgpack", "*.onnx", "*.pb"]
    ignored_extensions = tuple(pattern.lstrip("*.") for pattern in ignore)
    # Weight files by diffusers' names, in any folder (or at the top), non-variant only.
    allow = [
        n
        for n in files
        if not n.endswith(ignored_extensions)
        and (
            _NON_VARIANT_FILE.match(posixpath.basename(n)) or _NON_VARIANT_INDEX.match(posixpath.basename(n))
        )
    ]
    allow += [f"{k}/*" for k in folders if k not in model_folders]  # scheduler, tokenizers
    allow += [f"{k}/config.json" for k in model_folders]
    allow += [_custom_code(index, k) for k in folders if _custom_code(index, k) in files]
    allow += [*_ALWAYS, *_TRANSFORMERS_AUX]
    allow = [p for p in allow if not (len(p.split("/")) == 2 and p.split("/")[0] in skipped)]
    ignore += [f"{pattern}.index.*json" for pattern in ignore]
    return sorted(
        n
        for n in files
        if any(fnmatch.fnmatchcase(n, p) for p in allow)
        and not any(fnmatch.fnmatchcase(n, p) for p in ignore)
    )


# ---- llm routes: vLLM's default loader ------------------------------------------------------

# Weights and other formats vLLM's default loader does not read from the top level (one
# format is picked below), and files no loader reads.
WEIGHT_EXTENSIONS = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".h5",
    ".msgpack",
    ".onnx",
    ".onnx_data",
    ".pb",
    ".ot",
    ".tflite",
    ".mlmodel",
    ".npz",
    ".nemo",
)
_NOT_READ = (".md", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".mp4", ".pdf")
# vLLM's filter_files_not_needed_for_inference: training state saved beside pickled weights.
_TRAINING_FILES = ("training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")
SAFETENSORS_INDEX = "model.safetensors.index.json"
_SAFETENSORS_ONLY = frozenset({"safetensors", "fastsafetensors", "instanttensor"})


def weight_format(names: Collection[str], load_format: str) -> str:
    """The load format vLLM settles on for "auto": Mistral's consolidated files when the
    repository has any (vLLM matches the base name anywhere), else the HF layout."""
    if load_format != "auto":
        return load_format
    if any(fnmatch.fnmatch(posixpath.basename(n), "consolidated*.safetensors") for n in names):
        return "mistral"
    return "hf"


def llm_files(
    names: Collection[str],
    load_format: str = "auto",
    weight_map: Collection[str] | None = None,
    modules: Any = None,
) -> list[str]:
    """The files vLLM reads for a model: its top-level weights of one format, and the small
    top-level files (config, tokenizer, generation config, chat template, custom code,
    sentence-transformers' modules.json, sentence_bert_config.json and
    config_sentence_transformers.json).

    `weight_map` is the set of shard names in model.safetensors.index.json when the
    repository has one (vLLM downloads exactly those). `modules` is the content of
    modules.json when the repository has one: the files vLLM reads in the module folders
    it names are added (`st_module_files`).
    """
    top = [n for n in names if "/" not in n and not n.startswith(".")]
    weights = _llm_weights(top, weight_format(names, load_format), weight_map)
    small = [
        n
        for n in top
        if not n.endswith(WEIGHT_EXTENSIONS)
        and not n.endswith(_NOT_READ)
        and not n.startswith("LICENSE")
        and not _is_index(n)
    ]
    return sorted({*weights, *small, *st_module_files(names, modules)})


def _is_index(name: str) -> bool:
    return name.endswith((".index.json", ".index.fp16.json"))


def _llm_weights(top: list[str], fmt: str, weight_map: Collection[str] | None) -> list[str]:
    if fmt == "dummy":
        return []
    if fmt == "mistral":
        chosen = [n for n in top if fnmatch.fnmatch(n, "consolidated*.safetensors")]
        index = "consolidated.safetensors.index.json"
        return chosen + ([index] if index in top else [])
    if fmt in _SAFETENSORS_ONLY:
        patterns = ["*.safetensors"]
    else:  # "hf" and the loaders that take what it takes (bitsandbytes, ...)
        patterns = {"pt": ["*.pt"], "npcache": ["*.bin"]}.get(fmt, ["*.safetensors", "*.bin", "*.pt"])
    for pattern in patterns:  # the first format the repository has, as vLLM picks it
        chosen = [n for n in top if fnmatch.fnmatch(n, pattern) and n not in _TRAINING_FILES]
        if not chosen:
            continue
        if pattern == "*.safetensors":
            if weight_map and SAFETENSORS_INDEX in top:
                chosen = [n for n in chosen if n in set(weight_map)]
            return chosen + ([SAFETENSORS_INDEX] if SAFETENSORS_INDEX in top else [])
        index = f"pytorch_model{pattern[1:]}.index.json"
        return chosen + ([index] if index in top else [])
    return []


# ---- sentence-transformers modules: what vLLM reads beside the model ------------------------


def st_module_files(names: Collection[str], modules: Any) -> list[str]:
    """The files vLLM reads in the module folders `modules` (modules.json) names.

    vLLM 0.32 (`transformers_utils/config.py`) reads modules.json for every model, to tell
    a sentence-transformers embedder (a *ForCausalLM such as Qwen3-Embedding) from a
    generator, then `<path>/config.json` of the Pooling module (its pooling type; without
    it the architecture's default pooling applies, silently) and of each Dense module, whose
    weights it loads too (`models/adapters.py` `_load_dense_weights`: model.safetensors,
    else pytorch_model.bin). A module's `config.json` is taken whatever its type (a few
    hundred bytes, and a type name vLLM learns later is then already covered); weights only
    for a Dense module. The Transformer module sits at the top ("") and is the model itself.
    """
    entries = modules.get("modules", []) if isinstance(modules, dict) else modules
    if not isinstance(entries, list):
        return []
    present = set(names)
    chosen: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        folder = entry["path"].strip("/")
        if not folder:
            continue
        chosen.append(f"{folder}/config.json")
        # vLLM's Dense types: sentence_transformers.models.Dense, ...base.modules.dense.Dense,
        # pylate.models.Dense.Dense: the class is Dense in each.
        if str(entry.get("type", "")).rsplit(".", 1)[-1] == "Dense":
            weights = [f"{folder}/{n}" for n in ("model.safetensors", "pytorch_model.bin")]
            chosen += [w for w in weights if w in present][:1]
    return [n for n in chosen if n in present]
