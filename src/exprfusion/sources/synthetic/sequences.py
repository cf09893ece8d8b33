"""What happens in each synthetic video, frame by frame: expressions, labels, missing faces, who speaks.

This is the "story" of a video; :mod:`exprfusion.sources.synthetic.features` turns it into feature vectors. Plans are
produced in corpus order by :func:`plan_corpus`, which keeps each split's frame-level class shares on the
Aff-Wild2 prior; the features of a plan depend only on the plan, so they can be rendered in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from exprfusion.core.labels import IGNORE_LABEL, NUM_CLASSES, SPLITS
from exprfusion.sources.synthetic.profiles import SplitSize, SyntheticProfile, class_prior

# Spawn-key tags of the independent random streams derived from one seed.
WORLD_STREAM, SPLIT_STREAM, MEDIA_STREAM, SUBJECT_STREAM = range(4)
_MEDIA_PLAN, MEDIA_RENDER = 0, 1
_RESOLUTIONS = ("640x360", "640x480", "1280x720", "1920x1080", "480x360")


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random generator for one part of the corpus (e.g. ``MEDIA_STREAM, index``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class PersonPlan:
    """One annotated person of a media file.

    Attributes:
        video: annotation name (``<media>`` or ``<media>_left``/``_right``).
        subject: global subject index (subjects never cross splits).
        expression: int8 ``[n]`` class the face shows at each frame (never -1).
        intensity: float32 ``[n]`` how strongly it shows (0 at segment boundaries).
        labels: int8 ``[n]`` the annotation: the expression, -1 in ignore spans; all -1 in the test split.
        face_mask: bool ``[n]`` True where a face was found.
        speaking: bool ``[n]`` True where this person's voice is on the audio track.
    """

    video: str
    subject: int
    expression: np.ndarray
    intensity: np.ndarray
    labels: np.ndarray
    face_mask: np.ndarray
    speaking: np.ndarray


@dataclass(frozen=True)
class MediaPlan:
    """One media file (video + audio track) and the one or two people annotated in it."""

    index: int
    media: str
    split: str
    fps: float
    has_audio: bool
    people: tuple[PersonPlan, ...]

    @property
    def n_frames(self) -> int:
        """Number of video frames."""
        return int(self.people[0].expression.shape[0])


def markov_mask(n: int, rate: float, mean_run: float, rng: np.random.Generator) -> np.ndarray:
    """A two-state Markov chain over ``n`` frames: True in runs of mean length ``mean_run``, True share ``rate``."""
    if n <= 0 or rate <= 0:
        return np.zeros(max(n, 0), dtype=bool)
    if rate >= 1:
        return np.ones(n, dtype=bool)
    mean_on = max(mean_run, 1.0)
    mean_off = max(mean_on * (1.0 - rate) / rate, 1.0)
    start_on = bool(rng.random() < rate)
    batches, covered = [], 0
    while covered < n:
        k = int(1.2 * n / (mean_on + mean_off)) + 8
        on, off = rng.geometric(1.0 / mean_on, size=k), rng.geometric(1.0 / mean_off, size=k)
        # Each batch holds whole (first, second) pairs, so every batch starts in the same state.
        pairs = np.stack((on, off) if start_on else (off, on), axis=1).ravel()
        batches.append(pairs)
        covered += int(pairs.sum())
    lengths = np.concatenate(batches)
    states = np.resize(np.array([start_on, not start_on]), lengths.size)
    return np.repeat(states, lengths)[:n]


def runs_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of equal consecutive values."""
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [values.size])))
    return starts, lengths


class ClassShareTracker:
    """Keeps the frame-level class shares of a split on a target prior while segments are drawn.

    Each draw multiplies a video's own class preference by ``exp(strength * deficit / segment_frames)``, where
    ``deficit`` is how many frames a class lags behind its prior share so far. A class that falls a few
    segments behind becomes likely in the next segments of any video, so the split's shares stay within a few
    segments of the prior while each video keeps its few dominant classes.
    """

    def __init__(self, target: np.ndarray, strength: float, segment_frames: float) -> None:
        self.target = np.asarray(target, dtype=np.float64)
        self.strength = strength
        self.segment_frames = segment_frames
        self.counts = np.zeros_like(self.target)

    def probabilities(self, preference: np.ndarray) -> np.ndarray:
        """Probability of each class for the next segment of a video with this preference."""
        deficit = self.target * self.counts.sum() - self.counts
        boost = np.clip(self.strength * deficit / self.segment_frames, -30.0, 30.0)
        weights = preference * np.exp(boost - boost.max())
        return weights / weights.sum()

    def add(self, cls: int, frames: int) -> None:
        """Record a segment of ``frames`` frames of class ``cls``."""
        self.counts[cls] += frames


def video_preference(prior: np.ndarray, profile: SyntheticProfile, rng: np.random.Generator) -> np.ndarray:
    """A video's class preference: a few dominant classes on top of a little of the split prior."""
    low, high = profile.dominant_classes
    k = int(rng.integers(low, high + 1))
    likely = prior**0.6 / np.sum(prior**0.6)  # rare classes still dominate some videos
    dominant = rng.choice(NUM_CLASSES, size=k, replace=False, p=likely)
    preference = (1.0 - profile.dominant_mass) * prior
    preference[dominant] += profile.dominant_mass * rng.dirichlet(np.full(k, 2.0))
    return preference


def expression_runs(
    n: int,
    fps: float,
    preference: np.ndarray,
    tracker: ClassShareTracker,
    profile: SyntheticProfile,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the expression timeline of one person: lognormal segments whose classes track the split prior."""
    expression = np.empty(n, dtype=np.int8)
    low, high = profile.segment_bounds_seconds
    t = 0
    while t < n:
        seconds = np.clip(profile.segment_median_seconds * rng.lognormal(0.0, profile.segment_sigma), low, high)
        frames = min(max(1, round(seconds * fps)), n - t)
        cls = int(rng.choice(NUM_CLASSES, p=tracker.probabilities(preference)))
        tracker.add(cls, frames)
        expression[t : t + frames] = cls
        t += frames
    return expression


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def expression_intensity(
    expression: np.ndarray, fps: float, profile: SyntheticProfile, rng: np.random.Generator
) -> np.ndarray:
    """Intensity per frame: each expression builds up and fades out over a fraction of a second."""
    starts, lengths = runs_of(expression)
    k = lengths.size
    ramp_in = rng.uniform(*profile.ramp_seconds, size=k) * fps
    ramp_out = rng.uniform(*profile.ramp_seconds, size=k) * fps
    amplitude = rng.uniform(*profile.segment_amplitude, size=k)
    # A ramp never takes more than ~half its segment; the video starts and ends mid-expression.
    ramp_in = np.clip(np.minimum(ramp_in, 0.45 * lengths), 1e-6, None)
    ramp_out = np.clip(np.minimum(ramp_out, 0.45 * lengths), 1e-6, None)
    ramp_in[0], ramp_out[-1] = 1e-6, 1e-6
    run = np.repeat(np.arange(k), lengths)
    position = np.arange(expression.size) - starts[run] + 0.5
    rise = _smoothstep(np.clip(position / ramp_in[run], 0.0, 1.0))
    fall = _smoothstep(np.clip((lengths[run] - position) / ramp_out[run], 0.0, 1.0))
    return (amplitude[run] * rise * fall).astype(np.float32)


def face_missing_rate(mean_rate: float, quantile: float) -> float:
    """Heavy-tailed per-video missing-face rate: most videos well under the mean, a few far above it."""
    # Inverse CDF of a mixture of multipliers of the mean: 80 % in [0, 0.5), 15 % in [0.5, 2.5), 5 % in [5, 15).
    if quantile < 0.80:
        multiplier = 0.5 * quantile / 0.80
    elif quantile < 0.95:
        multiplier = 0.5 + 2.0 * (quantile - 0.80) / 0.15
    else:
        multiplier = 5.0 + 10.0 * (quantile - 0.95) / 0.05
    return float(min(0.95, mean_rate * multiplier / 0.925))  # 0.925 = mean multiplier


def stratified_quantiles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform quantiles, one per stratum, shuffled: rare outcomes occur at their expected frequency."""
    return (rng.permutation(n) + rng.random(n)) / max(n, 1)


def speakers(n: int, fps: float, people: int, profile: SyntheticProfile, rng: np.random.Generator) -> np.ndarray:
    """Who speaks at each frame: -1 for silence, else the person index; two people take turns."""
    silence_share = rng.uniform(*profile.silence_share)
    silent = markov_mask(n, silence_share, profile.silence_seconds * fps, rng)
    speaker = np.full(n, -1, dtype=np.int8)
    starts, lengths = runs_of(silent)
    current = int(rng.integers(people))
    for start, length in zip(starts, lengths, strict=True):
        if silent[start]:
            continue
        speaker[start : start + length] = current
        if people > 1 and rng.random() < profile.speaker_switch:
            current = 1 - current
    return speaker


@dataclass(frozen=True)
class MediaLayout:
    """Where one media sits in the corpus and its fixed facts, before anything happens in it."""

    index: int
    media: str
    split: str
    fps: float
    n_frames: int
    videos: tuple[str, ...]
    subjects: tuple[int, ...]
    has_audio: bool
    face_quantiles: tuple[float, ...]


def _frame_counts(
    size: SplitSize, fps: np.ndarray, people: np.ndarray, profile: SyntheticProfile, rng: np.random.Generator
) -> np.ndarray:
    """Frames per media: lognormal durations scaled so the split reaches its labelled-frame target."""
    duration = rng.lognormal(0.0, profile.video_length_sigma, size=fps.size)
    target = size.labelled_frames / (1.0 - profile.ignore_rate)
    scale = target / np.sum(duration * fps * people)
    for _ in range(20):  # clipping at the bounds moves the total; rescale until it settles
        frames = np.clip(np.round(scale * duration * fps), size.min_frames, size.max_frames)
        scale *= target / np.sum(frames * people)
    return np.clip(np.round(scale * duration * fps), size.min_frames, size.max_frames).astype(np.int64)


def _media_name(number: int, rng: np.random.Generator) -> str:
    """An Aff-Wild2-looking media name, e.g. ``video12`` or ``118-30-640x480`` (the 30 is not the fps)."""
    if rng.random() < 0.5:
        return f"video{number}"
    return f"{number}-{rng.choice((24, 25, 30, 60))}-{rng.choice(_RESOLUTIONS)}"


def corpus_layout(profile: SyntheticProfile, seed: int) -> list[MediaLayout]:
    """Every media of the corpus in write order, with its size, fps, names, subjects and audio presence."""
    sizes = {split: profile.split_size(split) for split in SPLITS}
    n_media = {split: size.videos - size.pairs for split, size in sizes.items()}
    numbers = stream(seed, WORLD_STREAM, 1).permutation(sum(n_media.values())) + 1
    fps_values = np.array([fps for fps, _ in profile.fps_mix])
    fps_weights = np.array([weight for _, weight in profile.fps_mix])
    layout: list[MediaLayout] = []
    next_subject = 0
    for split_index, split in enumerate(SPLITS):
        size, count = sizes[split], n_media[split]
        if count <= 0:
            continue
        rng = stream(seed, SPLIT_STREAM, split_index)
        is_pair = np.zeros(count, dtype=bool)
        is_pair[rng.choice(count, size=size.pairs, replace=False)] = True
        people = np.where(is_pair, 2, 1)
        fps = rng.choice(fps_values, size=count, p=fps_weights / fps_weights.sum())
        frames = _frame_counts(size, fps, people, profile, rng)
        audio_quantile = stratified_quantiles(count, rng)
        face_quantile = stratified_quantiles(int(people.sum()), rng)
        # Subjects: the first ones are all distinct, the rest recur; subjects never cross splits.
        n_people = int(people.sum())
        n_subjects = min(n_people, max(2, round(profile.subjects_per_person * n_people)))
        pool = next_subject + np.arange(n_subjects)
        subjects = np.concatenate((rng.permutation(pool), rng.choice(pool, size=n_people - n_subjects)))
        next_subject += n_subjects
        person = 0
        for i in range(count):
            number = int(numbers[len(layout)])
            media = _media_name(number, rng)
            chosen = subjects[person : person + people[i]].tolist()
            if is_pair[i] and chosen[0] == chosen[1]:  # two people of one video are two subjects
                chosen[1] = int(pool[(np.flatnonzero(pool == chosen[0])[0] + 1) % n_subjects])
            videos = (f"{media}_left", f"{media}_right") if is_pair[i] else (media,)
            layout.append(
                MediaLayout(
                    index=len(layout),
                    media=media,
                    split=split,
                    fps=float(fps[i]),
                    n_frames=int(frames[i]),
                    videos=videos,
                    subjects=tuple(int(s) for s in chosen),
                    has_audio=bool(is_pair[i] or audio_quantile[i] >= profile.no_audio_rate),
                    face_quantiles=tuple(float(q) for q in face_quantile[person : person + people[i]]),
                )
            )
            person += int(people[i])
    return layout


def plan_corpus(profile: SyntheticProfile, seed: int) -> Iterator[MediaPlan]:
    """Yield the plan of every media in write order; class shares track each split's prior across videos."""
    segment_frames = profile.segment_median_seconds * 30.0  # a typical segment at the dominant 30 fps
    trackers = {
        split: ClassShareTracker(class_prior(split), profile.prior_tracking, segment_frames) for split in SPLITS
    }
    for item in corpus_layout(profile, seed):
        rng = stream(seed, MEDIA_STREAM, item.index, _MEDIA_PLAN)
        n, fps, prior = item.n_frames, item.fps, class_prior(item.split)
        speaker = speakers(n, fps, len(item.videos), profile, rng)
        people = []
        for k, (video, subject) in enumerate(zip(item.videos, item.subjects, strict=True)):
            preference = video_preference(prior, profile, rng)
            expression = expression_runs(n, fps, preference, trackers[item.split], profile, rng)
            intensity = expression_intensity(expression, fps, profile, rng)
            ignore_rate = min(0.25, profile.ignore_rate * rng.exponential())
            ignored = markov_mask(n, ignore_rate, profile.ignore_span_seconds * fps, rng)
            if item.split == "test":
                ignored[:] = True  # test annotations are withheld
            labels = np.where(ignored, IGNORE_LABEL, expression).astype(np.int8)
            missing_rate = face_missing_rate(profile.missing_face_rate, item.face_quantiles[k])
            face_missing = markov_mask(n, missing_rate, profile.face_burst_seconds * fps, rng)
            people.append(
                PersonPlan(
                    video=video,
                    subject=subject,
                    expression=expression,
                    intensity=intensity,
                    labels=labels,
                    face_mask=~face_missing,
                    speaking=(speaker == k) & item.has_audio,
                )
            )
        yield MediaPlan(item.index, item.media, item.split, fps, item.has_audio, tuple(people))
