"""Feature extraction from Aff-Wild2 media: faces (any HF image model) and audio (any HF speech model)."""
