"""The HTTP service's logic that is not BentoML wiring: request limits, schemas, streaming sessions, metrics."""
