"""Image sizes a request may ask for: checked, never rounded.

Used twice: by the images API on the request (before anything loads, with the multiple
every pipeline family accepts) and by the diffusion backend on the job (with what the
loaded pipeline itself needs).
"""

from __future__ import annotations

from llmhost.errors import InvalidRequest

# Width and height must be multiples of this before the pipeline is known: every
# supported family accepts it (SD 1.x / SDXL need 8, SD 3.x needs 16).
DEFAULT_SIZE_MULTIPLE = 16


def check_size(
    width: int | None,
    height: int | None,
    max_edge: int,
    multiple: int,
    *,
    param: str | None = None,
    model_max_edge: int | None = None,
) -> None:
    """Reject (never round) a size the pipeline cannot draw exactly as asked.

    `param` names the request field for errors when the size came in one field ('size').
    `model_max_edge` is what the loaded model itself can draw (SD3's position embedding).
    """
    for side, value in (("width", width), ("height", height)):
        if value is None:
            continue
        label = f"The {side} in '{param}'" if param else f"'{side}'"
        where = param or side
        if value <= 0:
            raise InvalidRequest(f"{label} must be a positive number of pixels, not {value}.", param=where)
        if value > max_edge:
            raise InvalidRequest(
                f"{label} is {value}, above this route's limit of {max_edge} pixels "
                "(max_edge, VISION_MAX_EDGE).",
                param=where,
            )
        if model_max_edge is not None and value > model_max_edge:
            raise InvalidRequest(
                f"{label} is {value}; this model draws at most {model_max_edge} pixels per side.",
                param=where,
            )
        if value % multiple:
            lower = value - value % multiple
            upper = lower + multiple
            options = " or ".join(str(v) for v in (lower, upper) if 0 < v <= max_edge)
            raise InvalidRequest(
                f"{label} must be a multiple of {multiple}; {value} is not (use {options}).",
                param=where,
            )
