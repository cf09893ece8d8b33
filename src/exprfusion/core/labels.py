"""The Aff-Wild2 EXPR label set and split names, in one place."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
    "Other",
)
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_LABEL = -1

SPLITS: tuple[str, ...] = ("train", "validation", "test")
# Folder names used by the official annotation tree (EXPR_Recognition_Challenge/<dir>/<video>.txt).
SPLIT_DIRS: dict[str, str] = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}

# Aff-Wild2 EXPR frames with a face, per class (ABAW3 onward; see the README's data section).
AFFWILD2_TRAIN_COUNTS: tuple[int, ...] = (177_198, 16_573, 10_771, 9_080, 95_463, 78_751, 31_615, 165_866)
AFFWILD2_VALIDATION_COUNTS: tuple[int, ...] = (82_258, 6_126, 5_296, 8_408, 34_511, 25_157, 12_332, 106_444)


def class_shares(counts: tuple[int, ...]) -> tuple[float, ...]:
    """Normalise per-class counts to shares that sum to 1."""
    total = float(sum(counts))
    return tuple(c / total for c in counts)
