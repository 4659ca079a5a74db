"""Handing memory back after a failed job (llmhost.backends.diffusion.memory): a failed job's
tensors live on in its traceback's frames until they are cleared."""

from __future__ import annotations

import gc
import weakref

import pytest

from llmhost.backends.diffusion.memory import amount, clear_frames, empty_cuda_cache
from llmhost.units import GIB, MIB


class _Tensor:
    """Stands for a large tensor a failed job's frame still holds."""


def _fail(held: list[weakref.ref[_Tensor]]) -> None:
    tensor = _Tensor()  # a local of the failing frame, as a denoising step's latents are
    held.append(weakref.ref(tensor))
    raise RuntimeError("out of memory")


def _fail_chained(held: list[weakref.ref[_Tensor]]) -> None:
    try:
        _fail(held)
    except RuntimeError as exc:
        raise ValueError("the job failed") from exc


def test_clearing_the_frames_frees_what_a_failed_chain_held() -> None:
    held: list[weakref.ref[_Tensor]] = []
    with pytest.raises(ValueError) as caught:
        _fail_chained(held)
    error = caught.value  # kept, as the host keeps the error to report it
    gc.collect()
    assert held[0]() is not None  # the cause's frame still holds the tensor
    clear_frames(error)
    gc.collect()
    assert held[0]() is None
    assert isinstance(error.__cause__, RuntimeError)  # the error itself is intact


def test_no_cuda_cache_off_cuda() -> None:
    assert not empty_cuda_cache(None)
    assert not empty_cuda_cache("cpu")


def test_amounts_read_in_gib_from_one_gib_and_mib_below() -> None:
    assert amount(GIB) == "1.00 GiB"
    assert amount(3 * GIB // 2) == "1.50 GiB"
    assert amount(512 * MIB) == "512.0 MiB"
    assert amount(-2 * GIB) == "-2.00 GiB"  # memory given back
