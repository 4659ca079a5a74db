"""Keep the loaded models' objects out of Python's full garbage collections.

A model brings hundreds of thousands of long-lived objects into the host process (vLLM's
engine client, tokenizers, torch; a diffusers pipeline in full). Every full collection
walks them all with the event loop stopped: measured at 1.1 s under load, which showed
as TTFT spikes. `vllm serve` freezes its heap after start-up (gc.freeze) for that reason.
The host loads and unloads models while it runs, so the backends freeze the heap once a
model is loaded (cheap: no collection) and, once one is stopped, thaw it, collect (the
stopped model's objects go, a pipeline's GPU tensors held in reference cycles among
them) and freeze what remains.
"""

from __future__ import annotations

import atexit
import gc


def freeze() -> None:
    """After a load: move every object out of the collector's reach. Garbage frozen with
    them waits for the next `collect`."""
    gc.freeze()


# At exit everything goes back to the collector, so the interpreter's last collection
# finalizes it as usual (extension modules report objects left over as leaks).
atexit.register(gc.unfreeze)


def collect() -> None:
    """After an unload: hand the frozen objects back, collect, freeze the survivors (the
    other resident models' and the host's own). Takes a full collection: 0.1-0.3 s with
    vLLM imported."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """The host is done: leave the collector as it found it."""
    gc.unfreeze()
