"""Turn a video's plan into visual and audio feature vectors that look like transformer embeddings.

Each modality has a small latent space holding one prototype per class. A frame's latent vector is the
prototype of its expression times its intensity, plus the subject's identity offset, a slow AR(1) drift and
i.i.d. per-frame noise; a fixed random projection (per-dimension scale and bias, a few large "outlier"
dimensions, small per-dimension noise) maps it to the feature width. Where the information lies is set by the
profile's :class:`~exprfusion.sources.synthetic.profiles.ModalitySignal` of each modality; a profile may also give the
features the value statistics of real ones (:mod:`exprfusion.sources.synthetic.statistics`) and give each subject a
neutral face that dominates the visual features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from exprfusion.data.corpus import VideoRecord
from exprfusion.sources.synthetic.profiles import NEUTRAL, OTHER, ModalitySignal, SyntheticProfile
from exprfusion.sources.synthetic.sequences import (
    MEDIA_RENDER,
    MEDIA_STREAM,
    SUBJECT_STREAM,
    WORLD_STREAM,
    MediaPlan,
    stream,
)
from exprfusion.sources.synthetic.statistics import apply_floor, dimension_affine

_CHUNK_FRAMES = 4096  # projection is done in chunks so a long video never needs a float32 copy of itself
_OUTLIER_DIMS = 4


@dataclass(frozen=True)
class ModalityWorld:
    """The fixed geometry of one modality, shared by every video of a corpus.

    Attributes:
        signal: the modality's settings.
        prototypes: float32 ``[8, L]`` latent prototype of each class.
        silence: float32 ``[L]`` latent of a frame where nobody speaks (zeros for the face).
        projection: float32 ``[L, D]`` latent-to-feature map.
        dim_scale: float32 ``[D]`` per-dimension scale.
        dim_bias: float32 ``[D]`` per-dimension offset.
    """

    signal: ModalitySignal
    prototypes: np.ndarray
    silence: np.ndarray
    projection: np.ndarray
    dim_scale: np.ndarray
    dim_bias: np.ndarray


@dataclass(frozen=True)
class World:
    """Everything shared by the videos of one corpus."""

    visual: ModalityWorld
    audio: ModalityWorld


def class_prototypes(signal: ModalitySignal, rng: np.random.Generator) -> np.ndarray:
    """Latent prototypes ``[8, L]``: orthogonal directions, twins made collinear, rare ones pulled to the middle."""
    n_classes = len(signal.class_strength)
    # Orthonormal directions: how confusable two classes are is set by the knobs below, not by the draw.
    basis, _ = np.linalg.qr(rng.standard_normal((signal.latent_dim, n_classes)))
    directions = basis.T.copy()
    for first, second in signal.twins:
        # Keep only the part of the second direction orthogonal to the first, then mix at the set similarity.
        own = directions[second] - (directions[second] @ directions[first]) * directions[first]
        own /= np.linalg.norm(own)
        similarity = signal.twin_similarity
        directions[second] = similarity * directions[first] + np.sqrt(1.0 - similarity**2) * own
    prototypes = directions * np.asarray(signal.class_strength)[:, None]
    middle = 0.5 * (prototypes[NEUTRAL] + prototypes[OTHER])
    for cls in signal.rare_classes:
        prototypes[cls] = (1.0 - signal.rare_pull) * prototypes[cls] + signal.rare_pull * middle
    return prototypes.astype(np.float32)


def build_modality(signal: ModalitySignal, dim: int, rng: np.random.Generator, *, speech: bool) -> ModalityWorld:
    """Draw the geometry of one modality; ``speech`` adds a distinct latent for silent frames."""
    prototypes = class_prototypes(signal, rng)
    silence = rng.standard_normal(signal.latent_dim) * (1.5 / np.sqrt(signal.latent_dim)) if speech else None
    # Scale the projection so that features have unit-order spread, like layer-normalised embeddings.
    latent_var = signal.frame_noise**2 + signal.drift**2 + signal.subject_spread**2
    latent_var += float(np.mean(np.square(signal.class_strength))) / signal.latent_dim
    projection = rng.standard_normal((signal.latent_dim, dim)) / np.sqrt(signal.latent_dim * latent_var)
    dim_scale = rng.lognormal(0.0, 0.25, size=dim)
    dim_bias = rng.normal(0.0, 0.3, size=dim)
    outliers = rng.choice(dim, size=min(_OUTLIER_DIMS, dim // 16), replace=False)
    dim_bias[outliers] = rng.choice((-1.0, 1.0), size=outliers.size) * rng.uniform(4.0, 8.0, size=outliers.size)
    if signal.statistics.active:  # drawn after the generic scales, so profiles without statistics are unchanged
        dim_scale, dim_bias = dimension_affine(signal.statistics, dim, rng)
    return ModalityWorld(
        signal=signal,
        prototypes=prototypes,
        silence=np.zeros(signal.latent_dim, np.float32) if silence is None else silence.astype(np.float32),
        projection=projection.astype(np.float32),
        dim_scale=dim_scale.astype(np.float32),
        dim_bias=dim_bias.astype(np.float32),
    )


def build_world(profile: SyntheticProfile, seed: int, visual_dim: int, audio_dim: int) -> World:
    """The class prototypes and projections of both modalities, derived from the seed alone."""
    rng = stream(seed, WORLD_STREAM, 0)
    return World(
        visual=build_modality(profile.visual, visual_dim, rng, speech=False),
        audio=build_modality(profile.audio, audio_dim, rng, speech=True),
    )


@dataclass(frozen=True)
class SubjectIdentity:
    """What makes one person recognisable across videos: latent offsets, how expressive they are and, where the
    profile asks for one, their neutral face (float32 ``[visual_dim]``, in units of each dimension's scale)."""

    visual: np.ndarray
    audio: np.ndarray
    expressiveness: float
    face: np.ndarray | None = None


def subject_identity(profile: SyntheticProfile, seed: int, subject: int) -> SubjectIdentity:
    """The identity of a subject, the same in every video the subject appears in."""
    rng = stream(seed, SUBJECT_STREAM, subject)
    visual = (rng.standard_normal(profile.visual.latent_dim) * profile.visual.subject_spread).astype(np.float32)
    audio = (rng.standard_normal(profile.audio.latent_dim) * profile.audio.subject_spread).astype(np.float32)
    expressiveness = float(rng.uniform(*profile.expressiveness))
    face = None
    if profile.face_identity > 0:  # drawn last, so profiles without neutral faces are unchanged
        face = (rng.standard_normal(profile.visual_dim) * profile.face_identity).astype(np.float32)
    return SubjectIdentity(visual=visual, audio=audio, expressiveness=expressiveness, face=face)


def ar1_drift(n: int, dim: int, std: float, seconds: float, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) noise ``[n, dim]`` with standard deviation ``std`` and correlation time ``seconds``."""
    rho = float(np.exp(-1.0 / max(seconds * fps, 1e-6)))
    innovations = rng.standard_normal((n, dim), dtype=np.float32)
    innovations[1:] *= np.sqrt(1.0 - rho**2)  # the first frame is drawn from the stationary distribution
    return (std * lfilter([1.0], [1.0, -rho], innovations, axis=0)).astype(np.float32)


def _nuisance(n: int, signal: ModalitySignal, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Slow drift plus i.i.d. per-frame noise in the latent space."""
    latent = ar1_drift(n, signal.latent_dim, signal.drift, signal.drift_seconds, fps, rng)
    latent += signal.frame_noise * rng.standard_normal((n, signal.latent_dim), dtype=np.float32)
    return latent


def project(
    latent: np.ndarray, world: ModalityWorld, rng: np.random.Generator, bias: np.ndarray | None = None
) -> np.ndarray:
    """Map latent vectors ``[n, L]`` to float16 features ``[n, D]``, adding per-dimension noise.

    ``bias`` (float32 ``[D]``) replaces the modality's per-dimension offset, e.g. to add a subject's neutral face.
    """
    n, dim = latent.shape[0], world.projection.shape[1]
    bias = world.dim_bias if bias is None else bias
    features = np.empty((n, dim), dtype=np.float16)
    noise = np.empty((min(n, _CHUNK_FRAMES), dim), dtype=np.float32)
    for start in range(0, n, _CHUNK_FRAMES):
        stop = min(n, start + _CHUNK_FRAMES)
        chunk = latent[start:stop] @ world.projection
        chunk *= world.dim_scale
        chunk += bias
        block = noise[: stop - start]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= world.signal.dim_noise
        chunk += block
        features[start:stop] = chunk
    return features


def render_media(plan: MediaPlan, world: World, profile: SyntheticProfile, seed: int) -> list[VideoRecord]:
    """The records of one media: one per annotated person, all sharing the same audio array."""
    rng = stream(seed, MEDIA_STREAM, plan.index, MEDIA_RENDER)
    n, fps = plan.n_frames, plan.fps
    identities = [subject_identity(profile, seed, person.subject) for person in plan.people]
    visuals = []
    for person, identity in zip(plan.people, identities, strict=True):
        scale = identity.expressiveness * person.intensity
        latent = scale[:, None] * world.visual.prototypes[person.expression]
        latent += identity.visual
        latent += _nuisance(n, world.visual.signal, fps, rng)
        features = project(latent, world.visual, rng, _neutral_face(identity, world.visual))
        features[~person.face_mask] = 0  # no face, no visual embedding
        visuals.append(features)
    audio = _render_audio(plan, identities, world.audio, rng)
    audio_mask = np.full(n, plan.has_audio, dtype=bool)
    return [
        VideoRecord(
            name=person.video,
            split=plan.split,
            fps=fps,
            visual=visual,
            audio=audio,
            face_mask=person.face_mask,
            audio_mask=audio_mask,
            labels=person.labels,
            media=plan.media,
            subject=f"subject{person.subject:04d}",
        )
        for person, visual in zip(plan.people, visuals, strict=True)
    ]


def _neutral_face(identity: SubjectIdentity, world: ModalityWorld) -> np.ndarray | None:
    """The per-dimension offset of a subject's face: the modality's offsets plus the subject's neutral face (None
    where the profile has no neutral faces)."""
    if identity.face is None:
        return None
    return (world.dim_bias + world.dim_scale * identity.face).astype(np.float32)


def _render_audio(
    plan: MediaPlan, identities: list[SubjectIdentity], world: ModalityWorld, rng: np.random.Generator
) -> np.ndarray:
    """The media's audio features: the speaker's voice and expression during turns, silence in between."""
    n, dim = plan.n_frames, world.projection.shape[1]
    if not plan.has_audio:
        return np.zeros((n, dim), dtype=np.float16)
    latent = np.zeros((n, world.signal.latent_dim), dtype=np.float32)
    silent = np.ones(n, dtype=bool)
    for person, identity in zip(plan.people, identities, strict=True):
        speaking = person.speaking
        scale = identity.expressiveness * person.intensity[speaking]
        latent[speaking] = scale[:, None] * world.prototypes[person.expression[speaking]] + identity.audio
        silent &= ~speaking
    latent[silent] = world.silence
    room = rng.standard_normal(world.signal.latent_dim).astype(np.float32) * world.signal.subject_spread
    latent += room + _nuisance(n, world.signal, plan.fps, rng)
    features = project(latent, world, rng)
    apply_floor(features, silent, world.signal.statistics, rng)
    return features
