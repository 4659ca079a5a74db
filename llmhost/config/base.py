"""What every models.toml table shares: frozen, no unknown keys, one error type."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


class ConfigError(ValueError):
    """models.toml is unusable; the message is meant for the user as is."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
