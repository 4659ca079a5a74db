"""The bare-pipeline baseline: the same diffusers pipeline, called directly in a process
of its own, loaded the way llmhost loads it (AutoPipelineForText2Image, same dtype and
device choice), generating with the same arguments and encoding the same PNG.

A long-lived worker: reads one JSON command per line on stdin and answers one JSON line
on stdout. `{"cmd": "load"}` loads the pipeline; `{"cmd": "generate", ...}` generates
one image and answers the seconds it took (pipeline call and PNG encoding, the work
llmhost's endpoint does per request); `{"cmd": "quit"}` ends it.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any


class Direct:
    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options
        self.pipe: Any = None

    def load(self) -> dict[str, Any]:
        import torch
        from diffusers import AutoPipelineForText2Image
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        started = time.perf_counter()
        diffusers_logging.disable_progress_bar()  # as llmhost does
        transformers_logging.disable_progress_bar()
        opts = self.options
        device = opts.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        name = opts.get("torch_dtype", "auto")
        if name == "auto":
            dtype = torch.float16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, name)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if opts.get("revision"):
            kwargs["revision"] = opts["revision"]
        if opts.get("enable_safety_checker") is False:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        pipe = AutoPipelineForText2Image.from_pretrained(self.model, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        if opts.get("enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if opts.get("enable_tiling") and hasattr(getattr(pipe, "vae", None), "enable_tiling"):
            pipe.vae.enable_tiling()
        pipe.to(device)
        self.pipe = pipe
        return {"load_s": time.perf_counter() - started, "device": device, "dtype": str(dtype)}

    def generate(self, job: dict[str, Any]) -> dict[str, Any]:
        import torch

        started = time.perf_counter()
        output = self.pipe(
            prompt=job["prompt"],
            negative_prompt=None,
            num_inference_steps=job["num_inference_steps"],
            guidance_scale=job["guidance_scale"],
            width=job["width"],
            height=job["height"],
            num_images_per_prompt=1,
            generator=torch.Generator("cpu").manual_seed(job["seed"]),
            output_type="pil",
        )
        generated = time.perf_counter()
        buffer = io.BytesIO()
        output.images[0].save(buffer, format="PNG")
        done = time.perf_counter()
        return {"seconds": done - started, "pipeline_s": generated - started, "png_bytes": buffer.tell()}


def main() -> None:
    direct = Direct(sys.argv[1], json.loads(sys.argv[2]))
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        answer = direct.load() if command["cmd"] == "load" else direct.generate(command)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
