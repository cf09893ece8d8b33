"""From a trained model to labels: window logits, soft voting and median filtering, one-video prediction, streaming,
feature arrays."""
