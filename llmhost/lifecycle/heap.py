"""Keep the loaded models' objects out of Python's full garbage collections.

A model brings hundreds of thousands of long-lived objects into the host process (vLLM's
engine client, tokenizers, torch; a diffusers pipeline in full). Every full collection
walks them all with the event loop stopped: measured at 1.1 s under load, which showed
as TTFT spikes. `vllm serve` freezes its heap after start-up (gc.freeze) for that reason;
the host loads and unloads models while it runs, so it freezes after every load and
thaws before every unload, letting an unloaded model's objects (a pipeline's GPU tensors
held in reference cycles among them) be collected as before.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """After a load: collect once, then move every surviving object out of the collector's
    reach (they are the resident models' and the host's own, kept until an unload)."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Before an unload: hand the frozen objects back to the collector, so the model's
    own can go once it is stopped."""
    gc.unfreeze()
