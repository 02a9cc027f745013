"""Search: first-stage retrieval (dense e5 + BM25, fused by RRF), then reranking under a deadline."""
