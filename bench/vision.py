"""Comparison 4, vision: `POST /vision/generate` on llmhost vs the same pipeline called
directly (`bench.vision_direct`), same size, steps, guidance and seed.

Both processes load their pipeline once (untimed warm-up image), then take turns, one
round each at a time: llmhost is timed by the client (request sent to response read,
so HTTP, queueing, the lease, PNG and base64 are in), the direct side from the
pipeline call to the encoded PNG.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, ChildFailed, child_env, log
from bench.routes import Subjects
from bench.servers import Server, start_llmhost

PROMPT = "a red fox in the snow, photograph"


@dataclass(frozen=True)
class Job:
    width: int
    height: int
    steps: int
    guidance_scale: float = 4.5

    def body(self, seed: int) -> dict[str, Any]:
        return {
            "prompt": PROMPT,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "seed": seed,
            "width": self.width,
            "height": self.height,
        }


class DirectWorker:
    """`bench.vision_direct` as a long-lived child: one JSON command, one JSON answer."""

    def __init__(self, subjects: Subjects, run_dir: Path) -> None:
        route = subjects.vision
        self.log_path = run_dir / "vision-direct.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.vision_direct", route.model, json.dumps(route.pipeline)],
            cwd=run_dir,
            env=child_env(subjects.offline),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
            raise ChildFailed(f"vision-direct exited ({self.proc.poll()}):\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _llmhost_image(client: httpx.Client, server: Server, route: str, job: Job, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    response = client.post(f"{server.base_url}/{route}/generate", json=job.body(seed))
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"/{route}/generate: HTTP {response.status_code}: {response.text[:300]}")
    payload = response.json()
    return {"seconds": seconds, "server_elapsed_s": payload["elapsed"], "seed": payload["seed"]}


def run(subjects: Subjects, run_dir: Path, job: Job, rounds: int, per_round: int) -> dict[str, Any]:
    route = subjects.vision.name
    server = start_llmhost("llmhost-vision", subjects, [subjects.vision], run_dir)
    worker = DirectWorker(subjects, run_dir)
    llmhost: list[float] = []
    direct: list[float] = []
    detail: dict[str, Any] = {"llmhost": [], "direct": []}
    try:
        with httpx.Client(timeout=1800.0) as client:
            load_started = time.perf_counter()
            _llmhost_image(client, server, route, job, seed=1)  # loads the pipeline
            detail["llmhost_first_image_s"] = time.perf_counter() - load_started
            detail["direct_load"] = worker.ask({"cmd": "load"})
            worker.ask({"cmd": "generate", **job.body(1)})  # warm-up, as on llmhost
            for r in range(rounds):
                sides = ("llmhost", "direct") if r % 2 == 0 else ("direct", "llmhost")
                for side in sides:
                    times = []
                    for i in range(per_round):
                        seed = 1000 + i
                        if side == "llmhost":
                            answer = _llmhost_image(client, server, route, job, seed)
                        else:
                            answer = worker.ask({"cmd": "generate", **job.body(seed)})
                        times.append(answer["seconds"])
                        detail[side].append(answer)
                    # The round's value: the median image of its turn.
                    value = sorted(times)[len(times) // 2]
                    (llmhost if side == "llmhost" else direct).append(value)
                log(
                    f"  vision round {r + 1}: llmhost {llmhost[-1]:.3f} s, "
                    f"direct {direct[-1]:.3f} s per image"
                )
    finally:
        worker.close()
        server.child.kill()
    return {"llmhost": llmhost, "direct": direct, "detail": detail}
