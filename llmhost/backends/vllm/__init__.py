"""`llm`, `embedding` and `rerank` routes: vLLM's AsyncLLM in this process, its
processes, its start (context fit, phases, failure) and its watchdog. Importing this
package imports nothing from vLLM."""
