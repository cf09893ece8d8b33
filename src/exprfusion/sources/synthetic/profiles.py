"""Every knob of the synthetic corpus, grouped into named profiles (``tiny``, ``default``, ``full``, and
``realistic``/``realistic-tiny`` with the value statistics and identity-dominated faces of real features).

The class priors are the Aff-Wild2 EXPR frame counts (frames with a face) of the official train and validation
splits; the test split follows the validation prior. All durations are in seconds, so frame counts follow each
video's fps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated

import numpy as np
from pydantic import Field

from exprfusion.core.errors import InputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.core.settings import Flag, settings

NonNegative = Annotated[int, Field(ge=0)]

# Aff-Wild2 EXPR frames with a face per class, in CLASS_NAMES order (Neutral .. Other).
TRAIN_CLASS_FRAMES: tuple[int, ...] = (177_198, 16_573, 10_771, 9_080, 95_463, 78_751, 31_615, 165_866)
VALIDATION_CLASS_FRAMES: tuple[int, ...] = (82_258, 6_126, 5_296, 8_408, 34_511, 25_157, 12_332, 106_444)

NEUTRAL, ANGER, DISGUST, FEAR, HAPPINESS, SADNESS, SURPRISE, OTHER = range(len(CLASS_NAMES))


def class_prior(split: str) -> np.ndarray:
    """Frame share of each class in a split of Aff-Wild2 (test follows validation), float64 ``[8]``."""
    counts = np.asarray(TRAIN_CLASS_FRAMES if split == "train" else VALIDATION_CLASS_FRAMES, dtype=np.float64)
    return counts / counts.sum()


@settings(frozen=True)
class SplitSize:
    """How much of one split to generate.

    Attributes:
        videos: annotated videos (a ``_left``/``_right`` pair counts twice, as in the official split sizes).
        labelled_frames: target number of labelled frames over the split (the -1 spans come on top); for the
            test split, whose labels are withheld, the frames that would be labelled.
        pairs: two-person media among the videos, each giving a ``_left`` and a ``_right`` video.
        min_frames: shortest allowed video, in frames.
        max_frames: longest allowed video, in frames.
    """

    videos: NonNegative
    labelled_frames: NonNegative
    pairs: NonNegative = 0
    min_frames: Annotated[int, Field(ge=1)] = 150
    max_frames: Annotated[int, Field(ge=1)] = 60_000

    def __post_init__(self) -> None:
        if 2 * self.pairs > self.videos:
            raise ValueError(
                f"{self.pairs} pairs need {2 * self.pairs} videos (a pair counts as two), got {self.videos}"
            )
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) must not exceed max_frames ({self.max_frames})")


@settings(frozen=True)
class FeatureStatistics:
    """How the values of one modality's features are spread, as in real pretrained-model features.

    Off by default (``spread == 0``): the features then keep generic embedding-like scales. When on, feature
    dimension ``d`` is ``offset_d + scale_d * x_d`` (``x_d`` of unit order, carrying the expression), so the
    statistics change the values but not where the information lies.

    Attributes:
        spread: median per-dimension scale ``scale_d``; 0 turns the statistics off.
        spread_sigma: log-normal spread of the scales around it.
        offset_ratio: range of ``|offset_d| / scale_d`` (uniform).
        negative: all offsets negative (log energies) instead of a random sign per dimension.
        massive_dims: dimensions with a "massive activation": an offset ``massive_ratio`` times the median offset
            magnitude, with the ordinary small variation around it.
        massive_ratio: range of that multiple (uniform).
        floor: lowest value (a log energy floor): every value is clipped there and frames where nobody speaks sit
            on it; None for no floor.
        floor_noise: scale of the non-negative noise above the floor on those frames.
    """

    spread: Annotated[float, Field(ge=0.0)] = 0.0
    spread_sigma: Annotated[float, Field(ge=0.0)] = 0.0
    offset_ratio: tuple[Annotated[float, Field(ge=0.0)], float] = (0.0, 0.0)
    negative: Flag = False
    massive_dims: NonNegative = 0
    massive_ratio: tuple[Annotated[float, Field(gt=0.0)], float] = (20.0, 60.0)
    floor: float | None = None
    floor_noise: Annotated[float, Field(ge=0.0)] = 0.02

    def __post_init__(self) -> None:
        for name in ("offset_ratio", "massive_ratio"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(low, high)}")

    @property
    def active(self) -> bool:
        """Whether these statistics replace the generic feature scales."""
        return self.spread > 0


@dataclass(frozen=True)
class ModalitySignal:
    """How one modality encodes the expression.

    A frame's latent vector is ``expressiveness * intensity * prototype[class] + subject offset + drift + noise``;
    a fixed random projection maps it to the feature width. Per-frame noise is what temporal context removes;
    the slow drift and the subject offset are what it cannot.

    Attributes:
        latent_dim: width of the latent space the prototypes live in.
        class_strength: prototype norm per class, in CLASS_NAMES order.
        twins: class pairs whose prototypes point the same way (confusable in this modality).
        twin_similarity: cosine similarity of the twins' prototype directions.
        rare_classes: classes whose prototypes are pulled towards the Neutral/Other mean.
        rare_pull: blend factor of that pull (0 = none, 1 = identical to the mean).
        frame_noise: per-dimension standard deviation of the i.i.d. per-frame latent noise.
        drift: standard deviation of the temporally correlated AR(1) nuisance.
        drift_seconds: correlation time of that nuisance.
        subject_spread: per-dimension standard deviation of a subject's identity offset.
        dim_noise: standard deviation of the independent noise added to every feature dimension.
        statistics: the value statistics of the written features (off by default).
    """

    latent_dim: int
    class_strength: tuple[float, ...]
    twins: tuple[tuple[int, int], ...] = ()
    twin_similarity: float = 0.0
    rare_classes: tuple[int, ...] = (ANGER, DISGUST, FEAR)
    rare_pull: float = 0.0
    frame_noise: float = 1.0
    drift: float = 0.5
    drift_seconds: float = 2.0
    subject_spread: float = 0.3
    dim_noise: float = 0.1
    statistics: FeatureStatistics = field(default_factory=FeatureStatistics)


# The face separates the common classes well but confuses Anger with Disgust and Fear with Surprise; the rare
# classes are weaker than the common expressive ones and pulled towards Neutral/Other. Calibrated with
# exprfusion.evaluation.information_probe on the default profile (see the tests): visual > audio, fused > visual, and
# averaging over ~1 s beats single frames.
VISUAL_SIGNAL = ModalitySignal(
    latent_dim=32,
    class_strength=(1.5, 1.7, 1.7, 1.7, 2.2, 1.8, 1.8, 1.4),
    twins=((ANGER, DISGUST), (SURPRISE, FEAR)),
    twin_similarity=0.97,
    rare_pull=0.25,
    frame_noise=0.9,
    drift=0.65,
    drift_seconds=2.0,
    subject_spread=0.15,
    dim_noise=0.1,
)
# The voice only carries the expression while its owner speaks (silence, the other person's turns, media without
# audio), is noisier and drifts more, but tells Anger from Disgust and Fear from Surprise.
AUDIO_SIGNAL = ModalitySignal(
    latent_dim=32,
    class_strength=(1.6, 3.0, 3.0, 3.0, 2.4, 2.2, 2.6, 1.2),
    rare_pull=0.1,
    frame_noise=1.2,
    drift=0.75,
    drift_seconds=3.0,
    subject_spread=0.12,
    dim_noise=0.1,
)

# Real-feature value statistics (off in the profiles above): transformer hidden states (BEiT) have per-dimension
# means several times their spread and a few "massive activation" dimensions 20-60x the typical mean; log-mel
# energies are negative (about -5 to -13) with silence sitting at a floor of -14.
HIDDEN_STATE_STATISTICS = FeatureStatistics(
    spread=0.5, spread_sigma=0.5, offset_ratio=(8.0, 16.0), massive_dims=3, massive_ratio=(20.0, 60.0)
)
LOG_MEL_STATISTICS = FeatureStatistics(
    spread=0.6, spread_sigma=0.25, offset_ratio=(9.0, 17.0), negative=True, floor=-14.0, floor_noise=0.02
)
# Slightly less per-frame face noise than the default, so that the per-frame visual probe stays near 0.3 with
# the subjects' faces in the way.
REALISTIC_VISUAL_SIGNAL = replace(VISUAL_SIGNAL, statistics=HIDDEN_STATE_STATISTICS, frame_noise=0.75)
REALISTIC_AUDIO_SIGNAL = replace(AUDIO_SIGNAL, statistics=LOG_MEL_STATISTICS)
# A subject's neutral face: per-dimension spread 1.0 (in units of each dimension's scale), about 3x the spread of
# the class means around it, so the face says mostly who the person is.
REALISTIC_FACE_IDENTITY = 1.0
# Few subjects, each in about 2.5 videos: ~10 in the default-sized train split, ~4 in validation.
REALISTIC_SUBJECTS_PER_PERSON = 0.4

DEFAULT_FPS_MIX: tuple[tuple[float, float], ...] = (
    (30.0, 0.66),
    (29.97, 0.15),
    (25.0, 0.09),
    (15.0, 0.06),
    (7.5, 0.04),
)


@dataclass(frozen=True)
class SyntheticProfile:
    """All settings of one synthetic corpus.

    Attributes:
        name: profile name.
        train, validation, test: split sizes (``test`` may have zero videos).
        visual_dim, audio_dim: feature widths written to the corpus.
        fps_mix: (fps, probability) pairs, from the measured Aff-Wild2 mix.
        video_length_sigma: lognormal spread of video durations.
        segment_median_seconds, segment_sigma, segment_bounds_seconds: lognormal expression-segment durations.
        ramp_seconds: range of the time an expression takes to build up or fade out.
        segment_amplitude: range of a segment's peak intensity.
        expressiveness: range of a subject's overall expression scale.
        dominant_classes: range of the number of classes a video mostly shows.
        dominant_mass: share of a video's segments drawn from its dominant classes.
        prior_tracking: strength of the correction that keeps each split's class shares on its prior.
        ignore_rate, ignore_span_seconds: mean share and mean span of frames labelled -1.
        missing_face_rate: mean share of frames without a face (per-video rates are heavy-tailed around it and
            capped at 0.95, so very high settings come out somewhat lower).
        face_burst_seconds: mean length of a run of frames without a face.
        silence_share: range of a video's share of frames where nobody speaks.
        silence_seconds: mean length of a silent stretch.
        speaker_switch: probability that a two-person conversation changes speaker after a pause.
        no_audio_rate: share of single-person media without a usable audio track.
        subjects_per_person: distinct subjects per person-video in a split (below 1: subjects recur).
        face_identity: per-dimension spread, in units of the dimension's scale, of each subject's neutral face: a
            fixed random feature vector the expression varies around (0: off; subjects then differ only by their
            small latent offsets).
        visual, audio: how each modality encodes the expression.
    """

    name: str
    train: SplitSize
    validation: SplitSize
    test: SplitSize = field(default_factory=lambda: SplitSize(videos=0, labelled_frames=0))
    visual_dim: int = 1024
    audio_dim: int = 1024
    fps_mix: tuple[tuple[float, float], ...] = DEFAULT_FPS_MIX
    video_length_sigma: float = 0.7
    segment_median_seconds: float = 3.0
    segment_sigma: float = 0.8
    segment_bounds_seconds: tuple[float, float] = (0.5, 30.0)
    ramp_seconds: tuple[float, float] = (0.3, 0.7)
    segment_amplitude: tuple[float, float] = (0.7, 1.3)
    expressiveness: tuple[float, float] = (0.75, 1.25)
    dominant_classes: tuple[int, int] = (2, 4)
    dominant_mass: float = 0.85
    prior_tracking: float = 1.0
    ignore_rate: float = 0.03
    ignore_span_seconds: float = 2.0
    missing_face_rate: float = 0.02
    face_burst_seconds: float = 1.0
    silence_share: tuple[float, float] = (0.25, 0.45)
    silence_seconds: float = 1.5
    speaker_switch: float = 0.75
    no_audio_rate: float = 0.05
    subjects_per_person: float = 0.75
    face_identity: float = 0.0
    visual: ModalitySignal = field(default=VISUAL_SIGNAL)
    audio: ModalitySignal = field(default=AUDIO_SIGNAL)

    def split_size(self, split: str) -> SplitSize:
        """The size settings of one split."""
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]


PROFILES: dict[str, SyntheticProfile] = {
    # Seconds to generate; for tests. One two-person pair, one media without audio.
    "tiny": SyntheticProfile(
        name="tiny",
        train=SplitSize(videos=6, labelled_frames=1_900, pairs=1, min_frames=150, max_frames=500),
        validation=SplitSize(videos=3, labelled_frames=900, min_frames=150, max_frames=500),
        test=SplitSize(videos=1, labelled_frames=300, min_frames=150, max_frames=500),
        visual_dim=64,
        audio_dim=64,
        segment_median_seconds=1.5,
        no_audio_rate=0.34,
    ),
    # Small enough for the whole tune/train/evaluate pipeline to run in minutes on two CPU cores.
    "default": SyntheticProfile(
        name="default",
        train=SplitSize(videos=24, labelled_frames=30_000, pairs=2, min_frames=400, max_frames=3_000),
        validation=SplitSize(videos=10, labelled_frames=12_000, pairs=1, min_frames=400, max_frames=3_000),
        test=SplitSize(videos=3, labelled_frames=3_000, min_frames=400, max_frames=3_000),
    ),
    # Aff-Wild2 scale: 248 train videos (~597k labelled frames), 70 validation videos (~284k).
    "full": SyntheticProfile(
        name="full",
        train=SplitSize(videos=248, labelled_frames=597_361, pairs=10, min_frames=300, max_frames=30_000),
        validation=SplitSize(videos=70, labelled_frames=284_230, pairs=4, min_frames=300, max_frames=40_000),
    ),
    # The default size with the value statistics of real features and identity-dominated faces.
    "realistic": SyntheticProfile(
        name="realistic",
        train=SplitSize(videos=24, labelled_frames=30_000, pairs=2, min_frames=400, max_frames=3_000),
        validation=SplitSize(videos=10, labelled_frames=12_000, pairs=1, min_frames=400, max_frames=3_000),
        test=SplitSize(videos=3, labelled_frames=3_000, min_frames=400, max_frames=3_000),
        subjects_per_person=REALISTIC_SUBJECTS_PER_PERSON,
        face_identity=REALISTIC_FACE_IDENTITY,
        visual=REALISTIC_VISUAL_SIGNAL,
        audio=REALISTIC_AUDIO_SIGNAL,
    ),
    # The same in seconds, for tests: 4 train subjects, 2 validation subjects.
    "realistic-tiny": SyntheticProfile(
        name="realistic-tiny",
        train=SplitSize(videos=10, labelled_frames=3_000, pairs=1, min_frames=150, max_frames=500),
        validation=SplitSize(videos=5, labelled_frames=1_500, min_frames=150, max_frames=500),
        test=SplitSize(videos=1, labelled_frames=300, min_frames=150, max_frames=500),
        visual_dim=64,
        audio_dim=64,
        segment_median_seconds=1.5,
        no_audio_rate=0.2,
        subjects_per_person=REALISTIC_SUBJECTS_PER_PERSON,
        face_identity=REALISTIC_FACE_IDENTITY,
        visual=REALISTIC_VISUAL_SIGNAL,
        audio=REALISTIC_AUDIO_SIGNAL,
    ),
}


def get_profile(name: str) -> SyntheticProfile:
    """Look up a profile by name; an unknown name is an ``InputError`` listing the known ones."""
    if not isinstance(name, str) or name not in PROFILES:
        raise InputError(f"unknown synthetic profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
