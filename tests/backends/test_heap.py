"""llmhost.backends.heap: a frozen heap keeps garbage until `collect`, which frees it and freezes again.

Real pipelines freeing their memory with the heap frozen at load: tests/backends/diffusion/test_load.py.
"""

from __future__ import annotations

import gc
import weakref

from llmhost.backends import heap


class _Node:
    me: _Node | None = None


def test_collect_frees_what_was_frozen_and_freezes_the_rest() -> None:
    try:
        kept = _Node()
        garbage = _Node()
        garbage.me = garbage  # a reference cycle: only the collector frees it
        gone = weakref.ref(garbage)
        heap.freeze()  # after a load
        del garbage
        gc.collect()
        assert gone() is not None  # frozen: out of the collector's reach
        heap.collect()  # after an unload
        assert gone() is None
        assert gc.get_freeze_count() > 0 and kept is not None  # the survivors, frozen again
    finally:
        heap.thaw()
    assert gc.get_freeze_count() == 0
