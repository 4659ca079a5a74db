"""A stand-in for the Hugging Face Hub: a local HTTP server answering the calls huggingface_hub makes.

huggingface_hub 2.x, read from its source:
* `HfApi.model_info` / `repo_info`: GET /api/models/{repo}[/revision/{rev}] (`?blobs=True`
  adds sizes): {"id", "sha", "siblings": [{"rfilename", "size", "blobId"}]}.
* `list_repo_tree` (snapshot_download, HfFileSystem): GET /api/models/{repo}/tree/{rev}[/{path}]
  (`?recursive=`): [{"type": "file"|"directory", "path", "size", "oid"}].
* `hf_hub_download`: HEAD, then GET, /{repo}/resolve/{rev}/{file}; the HEAD's X-Repo-Commit,
  ETag and Content-Length are what it needs (no Xet headers: a plain HTTP download).
* errors: a status with X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound,
  GatedRepo), which huggingface_hub turns into its own exceptions.

Every request is recorded, with the revision it asked for, so a test can tell what was
fetched and at which revision. Point HF_ENDPOINT at `StandInHub.url` (and unset
HF_HUB_OFFLINE) in the process that talks to it.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Repo:
    """A repository: files per commit, and the branches or tags that name a commit."""

    commits: dict[str, dict[str, bytes]]
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False  # files need a token, as for a licence to accept (metadata is public)

    def commit_of(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass(frozen=True)
class Request:
    method: str
    kind: str  # "info", "tree", "file"
    repo: str
    revision: str
    path: str  # the file or folder asked for ("" for info)


class StandInHub:
    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInHub:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files_fetched(self, repo: str) -> set[str]:
        """The files of `repo` whose content was sent (GET, not HEAD)."""
        return {r.path for r in self.requests if r.kind == "file" and r.method == "GET" and r.repo == repo}

    # ---- the answers ----------------------------------------------------------------------

    def _answer(self, handler: http.server.BaseHTTPRequestHandler, *, body: bool) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo, rest = f"{parts[2]}/{parts[3]}", parts[4:]
            if not rest:
                self._info(handler, repo, "main", query, body)
            elif rest[0] == "revision" and len(rest) == 2:
                self._info(handler, repo, rest[1], query, body)
            elif rest[0] == "tree" and len(rest) >= 2:
                self._tree(handler, repo, rest[1], "/".join(rest[2:]), query, body)
            else:
                self._error(handler, 404, "EntryNotFound", "no such API path", body)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._file(handler, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), body)
        else:
            self._error(handler, 404, "EntryNotFound", "no such path", body)

    def _record(self, method: str, kind: str, repo: str, revision: str, path: str) -> None:
        with self._lock:
            self.requests.append(Request(method, kind, repo, revision, path))

    def _lookup(
        self, handler: http.server.BaseHTTPRequestHandler, repo: str, revision: str, body: bool
    ) -> tuple[Repo, str] | None:
        found = self.repos.get(repo)
        if found is None:
            self._error(handler, 404, "RepoNotFound", "Repository not found", body)
            return None
        commit = found.commit_of(revision)
        if commit is None:
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
            return None
        return found, commit

    def _info(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        repo: str,
        revision: str,
        query: dict[str, list[str]],
        body: bool,
    ) -> None:
        self._record(handler.command, "info", repo, revision, "")
        looked = self._lookup(handler, repo, revision, body)
        if looked is None:
            return
        found, commit = looked
        blobs = query.get("blobs", ["False"])[0].lower() == "true"
        siblings: list[dict[str, Any]] = []
        for name, content in found.commits[commit].items():
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                sibling |= {"size": len(content), "blobId": _oid(content)}
            siblings.append(sibling)
        info = {"id": repo, "modelId": repo, "sha": commit, "private": False, "gated": found.gated}
        self._json(handler, info | {"siblings": siblings}, body)

    def _tree(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        repo: str,
        revision: str,
        folder: str,
        query: dict[str, list[str]],
        body: bool,
    ) -> None:
        self._record(handler.command, "tree", repo, revision, folder)
        looked = self._lookup(handler, repo, revision, body)
        if looked is None:
            return
        found, commit = looked
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, content in found.commits[commit].items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].split("/")
            depth = len(rest) if recursive else 1
            for level in range(1, min(depth, len(rest) - 1) + 1):  # the folders on the way
                path = prefix + "/".join(rest[:level])
                entries.setdefault(path, {"type": "directory", "path": path, "oid": _oid(path.encode())})
            if recursive or len(rest) == 1:
                entries[name] = {"type": "file", "path": name, "size": len(content), "oid": _oid(content)}
        self._json(handler, list(entries.values()), body)

    def _file(
        self, handler: http.server.BaseHTTPRequestHandler, repo: str, revision: str, name: str, body: bool
    ) -> None:
        self._record(handler.command, "file", repo, revision, name)
        looked = self._lookup(handler, repo, revision, body)
        if looked is None:
            return
        found, commit = looked
        if found.gated and "authorization" not in {k.lower() for k in handler.headers}:
            self._error(handler, 401, "GatedRepo", f"Access to model {repo} is restricted.", body)
            return
        content = found.commits[commit].get(name)
        if content is None:
            self._error(handler, 404, "EntryNotFound", f"{name} does not exist", body)
            return
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("ETag", f'"{_oid(content)}"')
        handler.send_header("Content-Length", str(len(content)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if body:
            handler.wfile.write(content)

    @staticmethod
    def _json(handler: http.server.BaseHTTPRequestHandler, value: Any, body: bool) -> None:
        data = json.dumps(value).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    @staticmethod
    def _error(
        handler: http.server.BaseHTTPRequestHandler, status: int, code: str, message: str, body: bool
    ) -> None:
        data = json.dumps({"error": message}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)


def _oid(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()


# ---- repositories laid out like the real ones -------------------------------------------------

# stabilityai/stable-diffusion-3.5-medium at main, as the Hub lists it (file names and sizes
# from the Hub's tree pages of the "SD3.5 Medium Public Release" commit; sizes as the Hub
# rounds them). The sizes marked None are not in that listing.
SD35_MEDIUM_SIZES: dict[str, int | None] = {
    ".gitattributes": 1_520,
    "LICENSE.md": 11_700,
    "README.md": 12_100,
    "SD3.5M_example_workflow.json": 12_000,
    "SD3.5M_SLG_example_workflow.json": 16_900,
    "SD3.5L_plus_SD3.5M_upscaling_example_workflow.json": 20_600,
    "mmdit-x.png": 345_000,
    "model_index.json": 706,
    "sd3.5_medium.safetensors": None,  # the single-file checkpoint
    "scheduler/scheduler_config.json": None,
    "text_encoder/config.json": 574,
    "text_encoder/model.fp16.safetensors": 247_000_000,
    "text_encoder/model.safetensors": 247_000_000,
    "text_encoder_2/config.json": 570,
    "text_encoder_2/model.fp16.safetensors": 1_390_000_000,
    "text_encoder_2/model.safetensors": 1_390_000_000,
    "text_encoder_3/config.json": 740,
    "text_encoder_3/model-00001-of-00002.safetensors": 4_990_000_000,
    "text_encoder_3/model-00002-of-00002.safetensors": 4_530_000_000,
    "text_encoder_3/model.fp16-00001-of-00002.safetensors": 4_990_000_000,
    "text_encoder_3/model.fp16-00002-of-00002.safetensors": 4_530_000_000,
    "text_encoder_3/model.safetensors.index.fp16.json": 21_000,
    "text_encoder_3/model.safetensors.index.json": 19_900,
    "text_encoders/README.md": 636,
    "text_encoders/clip_g.safetensors": 1_390_000_000,
    "text_encoders/clip_l.safetensors": 246_000_000,
    "text_encoders/t5xxl_fp16.safetensors": 9_790_000_000,
    "text_encoders/t5xxl_fp8_e4m3fn.safetensors": 4_890_000_000,
    "tokenizer/merges.txt": 525_000,
    "tokenizer/special_tokens_map.json": 588,
    "tokenizer/tokenizer_config.json": 705,
    "tokenizer/vocab.json": 1_060_000,
    "tokenizer_2/merges.txt": 525_000,
    "tokenizer_2/special_tokens_map.json": 576,
    "tokenizer_2/tokenizer_config.json": 856,
    "tokenizer_2/vocab.json": 1_060_000,
    "tokenizer_3/special_tokens_map.json": 2_540,
    "tokenizer_3/spiece.model": 792_000,
    "tokenizer_3/tokenizer.json": 2_420_000,
    "tokenizer_3/tokenizer_config.json": 20_600,
    "transformer/config.json": 524,
    "transformer/diffusion_pytorch_model.safetensors": 4_940_000_000,
    "vae/config.json": 809,
    "vae/diffusion_pytorch_model.safetensors": 168_000_000,
}

SD3_MODEL_INDEX = {
    "_class_name": "StableDiffusion3Pipeline",
    "_diffusers_version": "0.31.0.dev0",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_3": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "tokenizer_3": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "SD3Transformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

# An LLM repository with everything vLLM does not read beside what it does: a pickled
# duplicate of the weights, Meta's original/ consolidated copy, a GGUF, docs.
LLM_FILES = (
    ".gitattributes",
    "LICENSE",
    "README.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "model-q4_k_m.gguf",
    "original/consolidated.00.pth",
    "original/params.json",
    "original/tokenizer.model",
    "pytorch_model.bin",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
)

# A sentence-transformers embedder laid out like Qwen/Qwen3-Embedding-0.6B (a Qwen3ForCausalLM
# vLLM pools by its modules): modules.json names the model at the top, last-token pooling in
# 1_Pooling/ and a Normalize module (which saves no files). Beside it, the ONNX and OpenVINO
# exports other runtimes read, each with its own copies of the config and tokenizer.
ST_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
ST_POOLING = {
    "word_embedding_dimension": 1024,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": True,
    "include_prompt": True,
}
EMBEDDING_FILES = (
    ".gitattributes",
    "1_Pooling/config.json",
    "LICENSE",
    "README.md",
    "config.json",
    "config_sentence_transformers.json",
    "generation_config.json",
    "merges.txt",
    "model.safetensors",
    "modules.json",
    "onnx/config.json",
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "onnx/tokenizer.json",
    "openvino/openvino_model.bin",
    "openvino/openvino_model.xml",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
)


def content_for(name: str, commit: str = "") -> bytes:
    """A file's bytes in the stand-in: real JSON where a loader parses it, else a few bytes
    that say which file and commit they are (so a test can tell two commits apart)."""
    if name == "model_index.json":
        return json.dumps(SD3_MODEL_INDEX).encode()
    if name == "model.safetensors.index.json":
        shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        weight_map = {f"layers.{i}.weight": shards[i % 2] for i in range(4)}
        return json.dumps({"metadata": {"total_size": 64}, "weight_map": weight_map}).encode()
    if name == "modules.json":
        return json.dumps(ST_MODULES).encode()
    if name == "1_Pooling/config.json":
        return json.dumps(ST_POOLING).encode()
    if name == "sentence_bert_config.json":
        return json.dumps({"max_seq_length": 8192, "do_lower_case": False}).encode()
    if name.endswith(".json"):
        return json.dumps({"name": name, "commit": commit}).encode()
    return f"{name} at {commit}\n".encode()


def repository(names: list[str] | tuple[str, ...], commit: str) -> dict[str, bytes]:
    return {name: content_for(name, commit) for name in names}
