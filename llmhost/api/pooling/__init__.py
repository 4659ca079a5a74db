"""Embeddings and rerank: `/…/v1/embeddings` (OpenAI's shape) for embedding routes and
`/…/v1/rerank` (Jina's and Cohere's shape) for rerank routes, served by vLLM's pooling
serving objects under a lease: `api_router` (URLs), `protocol` (vLLM's request models),
`serving` (the lease and the call)."""
