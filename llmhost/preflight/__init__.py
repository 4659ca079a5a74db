"""Before anything is evicted for a route: can its model be found (`model`), can vLLM
pool it (`pooling`). Milliseconds, no engine import."""
