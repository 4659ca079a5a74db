"""What the models.toml tests share: a good one-route table, and that table with one
sub-table's body replaced or added."""

from __future__ import annotations

GOOD = """
[routes.coder]
kind = "llm"
model = "Qwen/Qwen2.5-Coder-7B-Instruct"
served_names = ["coder-fast"]
[routes.coder.engine]
max_model_len = 8192
"""


def engine(body: str) -> str:
    return GOOD.replace("max_model_len = 8192\n", body + "\n")


def serving(body: str) -> str:
    return GOOD + "[routes.coder.serving]\n" + body + "\n"


def pipeline(body: str) -> str:
    return "[routes.vision]\nkind = 'diffusion'\nmodel = 'org/sd'\n[routes.vision.pipeline]\n" + body + "\n"
