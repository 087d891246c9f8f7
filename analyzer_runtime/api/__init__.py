"""The read-only HTTP search API (`rap-analyzer serve`): FastAPI over track_embeddings."""
