"""Image sizes a request may ask for (llmhost.config.image_size): checked, never rounded,
with errors naming the request field the size came in."""

from __future__ import annotations

import pytest

from llmhost.config.image_size import DEFAULT_SIZE_MULTIPLE, check_size
from llmhost.errors import InvalidRequest


def refusal(
    width: int | None,
    height: int | None,
    max_edge: int,
    multiple: int,
    *,
    param: str | None = None,
    model_max_edge: int | None = None,
) -> InvalidRequest:
    """The error `check_size` raises for these arguments."""
    with pytest.raises(InvalidRequest) as caught:
        check_size(width, height, max_edge, multiple, param=param, model_max_edge=model_max_edge)
    return caught.value


def test_exact_multiples_within_the_limits_pass() -> None:
    check_size(1024, 512, 1024, DEFAULT_SIZE_MULTIPLE)
    check_size(None, 16, 1024, DEFAULT_SIZE_MULTIPLE)
    check_size(64, 64, 128, 8, model_max_edge=64)


def test_sizes_are_checked_against_the_multiple_every_family_accepts() -> None:
    assert DEFAULT_SIZE_MULTIPLE == 16  # SD 3.x needs 16; SD 1.x and SDXL need 8
    error = refusal(1000, 512, 1024, DEFAULT_SIZE_MULTIPLE)
    assert error.message == "'width' must be a multiple of 16; 1000 is not (use 992 or 1008)."
    assert error.param == "width"


def test_a_size_from_the_size_field_names_that_field() -> None:
    error = refusal(512, 520, 1024, 16, param="size")
    assert error.message == "The height in 'size' must be a multiple of 16; 520 is not (use 512 or 528)."
    assert error.param == "size"


def test_the_models_own_limit_is_checked_after_the_routes() -> None:
    error = refusal(96, 64, 128, 16, model_max_edge=64)
    assert error.message == "'width' is 96; this model draws at most 64 pixels per side."
    route_limit = refusal(144, 64, 128, 16, model_max_edge=64)
    assert "above this route's limit of 128 pixels (max_edge, VISION_MAX_EDGE)" in route_limit.message


def test_the_suggestions_stay_inside_the_limit() -> None:
    assert refusal(8, 16, 128, 16).message.endswith("(use 16).")  # 0 is no size
    assert refusal(120, 16, 120, 16).message.endswith("(use 112).")  # 128 is past max_edge


def test_check_size_rejects_never_rounds() -> None:
    check_size(64, None, 128, 16)
    check_size(None, None, 128, 16)
    for width, fragment in ((0, "positive"), (-16, "positive"), (144, "limit of 128"), (72, "64 or 80")):
        with pytest.raises(InvalidRequest) as info:
            check_size(width, 64, 128, 16)
        assert info.value.param == "width"
        assert fragment in info.value.message
    with pytest.raises(InvalidRequest) as info:
        check_size(64, 120, 120, 16)
    assert "use 112)" in info.value.message, "a suggestion above the limit is left out"
