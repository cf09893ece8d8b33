"""MLflow: runs, the model registry and champion rule, lineage, the pyfunc model, packaging for BentoML."""
