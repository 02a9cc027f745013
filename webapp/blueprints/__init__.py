"""Blueprints: ``shop`` (HTML), ``api`` (search + events), ``rerank_api`` (Cohere/Jina/TEI), ``health``."""
