"""Small, valid corpus records for tests, built through the real writer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from exprfusion.data.annotations import EXPR_HEADER
from exprfusion.data.corpus import VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.sources.importer import ImportSources


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


def make_learnable_record(
    name: str,
    split: str = "train",
    n: int = 128,
    dims: tuple[int, int] = (8, 6),
    seed: int = 0,
    segment: int = 8,
    strength: float = 3.0,
    face_mask: np.ndarray | None = None,
) -> VideoRecord:
    """A video with a planted signal: runs of ``segment`` frames of one class, each class shifting the features.

    Every class appears in every video (the classes come in shuffled rounds of all eight). A frame's visual row is
    noise plus ``strength`` on dimension ``label % Dv``; its audio row is noise plus ``strength`` times a fixed,
    class-specific unit vector (the same for every video). With the default strength the classes are close to
    linearly separable frame by frame, so a few epochs of a tiny model learn them.
    """
    rng = np.random.default_rng(seed)
    rounds = -(-n // (segment * 8))
    classes = np.concatenate([rng.permutation(8) for _ in range(rounds)])
    labels = np.repeat(classes, segment)[:n]
    audio_codes = np.random.default_rng(1234).standard_normal((8, dims[1]))
    audio_codes /= np.linalg.norm(audio_codes, axis=1, keepdims=True)
    visual = rng.standard_normal((n, dims[0]))
    visual[np.arange(n), labels % dims[0]] += strength
    audio = rng.standard_normal((n, dims[1])) + strength * audio_codes[labels]
    faces = np.ones(n, dtype=bool) if face_mask is None else np.asarray(face_mask, dtype=bool)
    return VideoRecord(
        name=name,
        split=split,
        fps=30.0,
        visual=(visual * faces[:, None]).astype(np.float16),
        audio=audio.astype(np.float16),
        face_mask=faces,
        audio_mask=np.ones(n, dtype=bool),
        labels=labels if split != "test" else np.full(n, -1),
    )


def write_learnable_corpus(root: Path, n_train: int = 4, n_validation: int = 2, strength: float = 3.0) -> Path:
    """A corpus of ``make_learnable_record`` videos (train: 128 frames each, validation: 96); returns ``root``."""
    with CorpusWriter(root) as writer:
        for i in range(n_train):
            writer.add(make_learnable_record(f"t{i}", "train", n=128, seed=i, strength=strength))
        for i in range(n_validation):
            writer.add(make_learnable_record(f"v{i}", "validation", n=96, seed=100 + i, strength=strength))
    return root


def make_planted_record(
    name: str,
    split: str = "train",
    n: int = 80,
    dims: tuple[int, int] = (8, 6),
    seed: int = 0,
    signal: str = "visual",
    strength: float = 3.0,
) -> VideoRecord:
    """A video whose labels are learnable: segments of 10 frames, the class planted in the ``signal`` features.

    The planted stream holds ``strength`` at the feature index equal to the class (mod its width) plus unit noise;
    the other stream is pure noise. Every frame has a face and audio, and every frame is labelled.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 8, size=-(-n // 10)), 10)[:n]
    visual = rng.standard_normal((n, dims[0])).astype(np.float32)
    audio = rng.standard_normal((n, dims[1])).astype(np.float32)
    planted = visual if signal == "visual" else audio
    planted[np.arange(n), labels % planted.shape[1]] += strength
    return VideoRecord(
        name=name,
        split=split,
        fps=30.0,
        visual=visual.astype(np.float16),
        audio=audio.astype(np.float16),
        face_mask=np.ones(n, dtype=bool),
        audio_mask=np.ones(n, dtype=bool),
        labels=labels.astype(np.int64),
    )


def git_repository(folder: Path) -> str:
    """Make ``folder`` a git repository with one commit; return the commit (``git rev-parse HEAD``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README").write_text("test repository\n")
    for command in (["init", "-q"], ["add", "README"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *command], cwd=folder, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()


def copy_repository(target: Path) -> None:
    """Copy the project's files git would commit (tracked, and untracked but not ignored) into ``target``."""
    repository = Path(__file__).resolve().parents[1]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repository,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = repository / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
