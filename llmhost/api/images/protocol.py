"""Request bodies of the image endpoints: `/{route}/generate` and OpenAI's images API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**63 - 1


class _Strict(BaseModel):
    # Unknown fields and wrong types are errors, not silently dropped or coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class Tuning(_Strict):
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = Field(None, ge=0, le=50, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


class GenerateRequest(Tuning):
    prompt: str
    width: int | None = None
    height: int | None = None


class ImagesRequest(Tuning):
    """OpenAI's `images.generate` body, plus the /generate tuning fields as extensions."""

    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    # Sent by OpenAI clients; they have no meaning for a diffusion pipeline.
    quality: str | None = None
    style: str | None = None
    user: str | None = None
