"""The Aff-Wild2-shaped synthetic corpus: profiles, the frame-level story of each video, its features."""

from exprfusion.sources.synthetic.generate import generate_corpus, resolve_profile
from exprfusion.sources.synthetic.profiles import (
    PROFILES,
    FeatureStatistics,
    ModalitySignal,
    SplitSize,
    SyntheticProfile,
    get_profile,
)

__all__ = [
    "PROFILES",
    "FeatureStatistics",
    "ModalitySignal",
    "SplitSize",
    "SyntheticProfile",
    "generate_corpus",
    "get_profile",
    "resolve_profile",
]
