"""The bare-pipeline baseline: the same diffusers pipeline, called directly in a process
of its own, loaded by llmhost's own loader functions (llmhost.backends.diffusion.load:
same dtype, device, components and placement), generating with the same arguments and
encoding the same PNG.

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
        # Imported before the clock starts: load_s is the load itself.
        import torch  # noqa: F401
        from diffusers import AutoPipelineForText2Image  # noqa: F401

        from llmhost.backends.diffusion.load import open_pipeline, place, plan_load
        from llmhost.config import PipelineConfig

        started = time.perf_counter()
        opts = PipelineConfig.model_validate(self.options)
        plan = plan_load(self.model, opts, name="direct")
        pipe = open_pipeline(self.model, plan, opts)
        place(pipe, plan.placement.offload, plan.device)
        self.pipe = pipe
        return {"load_s": time.perf_counter() - started, "device": plan.device, "dtype": str(plan.dtype)}

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
