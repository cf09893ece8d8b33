"""Small, valid corpus records for tests, built through the real writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exprfusion.annotations import EXPR_HEADER
from exprfusion.corpus import CorpusWriter, VideoRecord
from exprfusion.importer import ImportSources


def make_record(
    name: str,
    split: str = "train",
    n: int = 40,
    dims: tuple[int, int] = (8, 6),
    seed: int = 0,
    fps: float = 30.0,
) -> VideoRecord:
    """A small, valid video record with some missing faces and ignored frames."""
    rng = np.random.default_rng(seed)
    face_mask = rng.random(n) > 0.1
    visual = rng.standard_normal((n, dims[0])).astype(np.float16) * face_mask[:, None]
    labels = rng.integers(-1, 8, size=n) if split != "test" else np.full(n, -1)
    return VideoRecord(
        name=name,
        split=split,
        fps=fps,
        visual=visual,
        audio=rng.standard_normal((n, dims[1])).astype(np.float16),
        face_mask=face_mask,
        audio_mask=np.ones(n, dtype=bool),
        labels=labels,
    )


FRAMES = {"v1": 12, "pair_left": 10, "pair_right": 10, "w": 9}
SPLIT_OF = {"v1": "Train_Set", "pair_left": "Train_Set", "pair_right": "Train_Set", "w": "Validation_Set"}


def write_official_tree(root: Path) -> ImportSources:
    """An EXPR_Recognition_Challenge tree, visual features per person, audio per media (50 rows/s-like)."""
    rng = np.random.default_rng(0)
    challenge = root / "EXPR_Recognition_Challenge"
    for video, n in FRAMES.items():
        folder = challenge / SPLIT_OF[video]
        folder.mkdir(parents=True, exist_ok=True)
        labels = [str(int(x)) for x in rng.integers(-1, 8, n)]
        (folder / f"{video}.txt").write_text(EXPR_HEADER + "\n" + "\n".join(labels) + "\n")
        (root / "visual").mkdir(exist_ok=True)
        np.save(root / "visual" / f"{video}.npy", rng.standard_normal((n, 5)).astype(np.float32))
    (root / "audio").mkdir()
    for media, n in (("v1", 20), ("pair", 17), ("w", 9)):
        np.save(root / "audio" / f"{media}.npy", rng.standard_normal((n, 3)).astype(np.float32))
    # Faces: v1 misses frames 3 and 4; the pair has a cropped_aligned folder only for the left person.
    cropped = root / "cropped_aligned"
    for video, present in (("v1", [1, 2, 5, 6, 7, 8, 9, 10, 11, 12]), ("pair_left", range(1, 11))):
        (cropped / video).mkdir(parents=True)
        for frame in present:
            (cropped / video / f"{frame:05d}.jpg").touch()
    (cropped / "w").mkdir()
    for frame in range(1, 10):
        (cropped / "w" / f"{frame:05d}.jpg").touch()
    fps = root / "fps.csv"
    fps.write_text("media,fps\nv1,30\npair,25\nw,7.5\n")
    return ImportSources(
        annotations=root, visual=root / "visual", audio=root / "audio", cropped_aligned=cropped, fps_csv=fps
    )


def write_small_corpus(
    root: Path, n_train: int = 4, n_validation: int = 2, extra: tuple[VideoRecord, ...] = ()
) -> Path:
    """A corpus of ``make_record`` videos (train: 60 frames each, validation: 50) plus ``extra``; returns ``root``."""
    with CorpusWriter(root) as writer:
        for i in range(n_train):
            writer.add(make_record(f"t{i}", "train", n=60, seed=i))
        for i in range(n_validation):
            writer.add(make_record(f"v{i}", "validation", n=50, seed=10 + i))
        for record in extra:
            writer.add(record)
    return root
