"""Settings from the environment and a `.env` file.

The variable names are those of the system llmhost replaces, so existing `.env`
files keep working. Precedence: environment > .env > models.toml > built-in default.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmhost.config import Catalog, ConfigError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def refuse_exposure(host: str, api_key: str | None, allow_no_key: bool) -> None:
    """ConfigError when `serve` would listen beyond this machine with no key. `serve` and
    `check` both ask here, so `check` refuses exactly what `serve` refuses."""
    if host not in LOOPBACK_HOSTS and api_key is None and not allow_no_key:
        raise ConfigError(
            f"refusing to listen on {host} without an API key: anyone on the network "
            "could use every model. Set VLLM_API_KEY, or pass --allow-no-key if that is what "
            "you want."
        )


class Settings(BaseSettings):
    # An empty variable (`IDLE_SECONDS=`, as .env.example's lines read once uncommented
    # and emptied) is unset: the next source (.env, models.toml, the default) decides.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    vllm_api_key: SecretStr | None = None
    hf_token: SecretStr | None = None
    hf_home: Path = Path("/srv/llm/.cache")  # the Hugging Face cache; HF_HOME
    prewarm_routes: Annotated[tuple[str, ...] | None, NoDecode] = None
    idle_seconds: float | None = Field(None, gt=0)
    start_timeout_seconds: float | None = Field(None, gt=0)

    vision_model_id: str | None = None
    vision_model_revision: str | None = None
    vision_enable_safety_checker: bool | None = None
    vision_enable_tiling: bool | None = None
    vision_enable_attention_slicing: bool | None = None
    vision_max_edge: int | None = Field(None, ge=64, le=4096)
    vision_offload: Literal["none", "model", "sequential"] | None = None
    vision_text_encoder_3: bool | None = None

    searxng_url: str = "http://127.0.0.1:8080"  # SEARXNG_URL, for /tools/searxng_search
    llmhost_config: Path = Path("models.toml")
    llmhost_host: str = "127.0.0.1"
    llmhost_port: int = Field(8000, ge=1, le=65535)
    llmhost_log_level: str = "info"

    @field_validator("prewarm_routes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("vllm_api_key", "hf_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def api_key(self) -> str | None:
        return self.vllm_api_key.get_secret_value() if self.vllm_api_key else None

    def apply_to(self, catalog: Catalog) -> Catalog:
        """models.toml with the environment's overrides applied (validated again)."""
        host: dict[str, Any] = {}
        if self.idle_seconds is not None:
            host["idle_seconds"] = self.idle_seconds
        if self.start_timeout_seconds is not None:
            host["start_timeout_seconds"] = self.start_timeout_seconds
        if self.prewarm_routes is not None:
            host["prewarm"] = self.prewarm_routes
        vision = self._vision_overrides()
        routes = {name: vision for name, r in catalog.routes.items() if r.kind == "diffusion" and vision}
        if not host and not routes:
            return catalog
        return catalog.with_overrides(host, routes)

    def origin(self, field: str) -> str:
        """Where a field's value came from: "env", ".env" or "default" (environment wins)."""
        return origin(field)

    def _vision_overrides(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.vision_model_id:
            fields["model"] = self.vision_model_id
        pipeline = {
            "revision": self.vision_model_revision,
            "enable_safety_checker": self.vision_enable_safety_checker,
            "enable_tiling": self.vision_enable_tiling,
            "enable_attention_slicing": self.vision_enable_attention_slicing,
            "max_edge": self.vision_max_edge,
            "offload": self.vision_offload,
            "text_encoder_3": self.vision_text_encoder_3,
        }
        pipeline = {k: v for k, v in pipeline.items() if v is not None}
        if pipeline:
            fields["pipeline"] = pipeline
        return fields

    def export_cache_dir(self) -> None:
        """Point the Hugging Face libraries at the weights cache `weights_cache` names:
        HF_HOME (default /srv/llm/.cache, where the system llmhost replaces kept its
        weights), created here; when this user can neither write nor create a default
        that came from the settings, the Hugging Face default, with a warning (a laptop,
        no root). Must run before those libraries are imported."""
        # Written into os.environ, not passed along: huggingface_hub, transformers,
        # diffusers and vLLM (its engine core too, a child process that inherits the
        # environment) take the cache location from HF_HOME only; no loader argument
        # reaches all of them. An empty variable is unset, as for every setting (the
        # libraries would read "" as the working directory).
        for name in _CACHE_VARIABLES:
            if os.environ.get(name) == "":
                del os.environ[name]
        cache = self.weights_cache()
        if "HF_HOME" in cache.from_environment:
            return
        if cache.fallback is None:
            try:
                cache.home.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass
            else:
                os.environ["HF_HOME"] = str(cache.home)
                return
        logging.getLogger("llmhost").warning(
            "%s is not writable; using the Hugging Face default cache %s. Set HF_HOME to choose.",
            cache.home,
            cache.fallback or _hf_default_home(),
        )

    def weights_cache(self) -> WeightsCache:
        """Where the weights are: the one answer `serve` (export_cache_dir), `pull` and
        `check` all go by. HF_HOME from the environment, else from the settings (.env,
        default /srv/llm/.cache); the weights in HF_HUB_CACHE, else HF_HOME/hub, as
        huggingface_hub resolves them. Nothing is created."""
        env = {name: os.environ[name] for name in _CACHE_VARIABLES if os.environ.get(name)}
        home = _expand(env.get("HF_HOME") or str(self.hf_home))
        hub_variable = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
        hub = _expand(hub_variable) if hub_variable else home / "hub"
        # `serve` leaves a default it cannot write for the libraries' own; one the
        # environment set is used as it is (downloads into it then fail).
        fallback = None if "HF_HOME" in env or can_write(home) else _hf_default_home()
        return WeightsCache(home, hub, tuple(env), fallback)

    def export_hub_token(self) -> None:
        """Hand HF_TOKEN to the loaders under both names the Hugging Face libraries read."""
        # Written into os.environ for the same reason as HF_HOME: vLLM's engine core and
        # the diffusers/transformers downloads read the token from the environment.
        if self.hf_token is not None:
            token = self.hf_token.get_secret_value()
            os.environ["HF_TOKEN"] = token
            os.environ["HUGGING_FACE_HUB_TOKEN"] = token


# The variables that place the Hugging Face cache (HUGGINGFACE_HUB_CACHE: the old name
# of HF_HUB_CACHE, still read by huggingface_hub).
_CACHE_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")


@dataclass(frozen=True)
class WeightsCache:
    """The Hugging Face cache: `home` (HF_HOME) and `hub`, the folder below it (or where
    HF_HUB_CACHE says) that holds the weights: where `pull` downloads and `check` looks."""

    home: Path
    hub: Path
    from_environment: tuple[str, ...]  # the variables above the environment set (for `sudo env`)
    # The Hugging Face default `serve` uses instead, when `home` came from the settings
    # and this user can neither write nor create it; None: `serve` uses `home`.
    fallback: Path | None = None

    @property
    def serve_hub(self) -> Path:
        """The folder `serve`, run as this user, reads the weights from."""
        hub_set = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} & set(self.from_environment)
        if self.fallback is None or hub_set:
            return self.hub  # no fallback, or HF_HUB_CACHE holds the weights either way
        return self.fallback / "hub"


def _hf_default_home() -> Path:
    """huggingface_hub's HF_HOME when the variable is unset."""
    return _expand(os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"))


def _expand(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))  # as huggingface_hub reads them


def can_write(path: Path) -> bool:
    """Whether this user may write `path`, or create it below its nearest existing parent."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def origin(field: str) -> str:
    """Where a setting's value comes from: "env", ".env" or "default" (environment wins;
    names are case-insensitive and empty values count as unset, as Settings reads them)."""
    name = field.lower()
    if any(key.lower() == name and value for key, value in os.environ.items()):
        return "env"
    env_file = dotenv_path()
    if env_file is not None:
        from dotenv import dotenv_values

        if any(key.lower() == name and value for key, value in dotenv_values(env_file).items()):
            return ".env"
    return "default"


def dotenv_path() -> Path | None:
    """The .env file Settings reads (./.env), if there is one."""
    env_file = Settings.model_config.get("env_file")
    if isinstance(env_file, (str, Path)) and Path(env_file).is_file():
        return Path(env_file)
    return None
