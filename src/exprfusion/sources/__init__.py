"""Producers of the corpus layout: import of precomputed features, the synthetic generator, BEiT/WavLM extraction."""
