"""The product catalog: tables, row validation, and the importer that also precomputes first-stage embeddings."""
