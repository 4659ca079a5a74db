"""What vLLM accepts, read from its installed source without importing it.

Importing vLLM takes about 6 s, far too long for `llmhost check` or for start-up (the host
must answer /healthz within 2 s). What `check` validates against is plain Python in vLLM's
source, so it is read with `ast`, once per process, and only the files a config needs:

- engine keys and their types: the fields of `EngineArgs` / `AsyncEngineArgs`
  (vllm/engine/arg_utils.py). Type aliases such as `ModelDType` or `CacheDType` are followed
  through the imports into vllm/config/*.py; numeric bounds come from the `Field(gt=..,
  le=..)` of the config class a field's default is taken from (`CacheConfig.
  gpu_memory_utilization` -> `Field(default=.., gt=0, le=1)`).
- quantization methods: `QuantizationMethods` and `DEPRECATED_QUANTIZATION_METHODS`
  (vllm/model_executor/layers/quantization/__init__.py).
- tool and reasoning parsers: the lazy registration tables in vllm/tool_parsers/__init__.py
  and vllm/reasoning/__init__.py (what `vllm serve --tool-call-parser` accepts).

One module per source: `source` (finding and parsing vLLM's files), `field_types`
(what an annotation allows), `engine` (engine keys), `quantization`, `parsers`.

Every lookup returns None (nothing to check) where vLLM is not installed or its source has
another shape; a field whose annotation is not a simple type (int, float, bool, str,
Literal[...], unions of these and None) is not checked.
"""

from llmhost.vllm_source.engine import EngineField, check_engine, known, unknown
from llmhost.vllm_source.field_types import Accepts
from llmhost.vllm_source.parsers import parser_problem, reasoning_parsers, tool_parsers
from llmhost.vllm_source.quantization import quantization_methods
from llmhost.vllm_source.source import suggest, version

__all__ = [
    "Accepts",
    "EngineField",
    "check_engine",
    "known",
    "parser_problem",
    "quantization_methods",
    "reasoning_parsers",
    "suggest",
    "tool_parsers",
    "unknown",
    "version",
]
