"""The fusion model's hyper-parameters: :class:`FusionConfig`, validated on construction, and its allowed values.

The model that reads it is :class:`exprfusion.model.fusion_transformer.FusionTransformer`; ``to_dict()`` is what MLflow
logs, the artefact stores and the service reads back. The defaults are the pipeline's model (``params.yaml``'s
``tune.model``, and the search's usual winner for the searched width, depth and modality dropout);
:meth:`FusionConfig.paper` is the paper's.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from exprfusion.core.labels import NUM_CLASSES
from exprfusion.core.settings import settings, validate

FusionMode = Literal["gated", "visual", "audio"]
WindowReadout = Literal["none", "audio", "both"]
Normalisation = Literal["global", "robust", "video", "none", "auto"]
FUSION_MODES: tuple[str, ...] = typing.get_args(FusionMode)
WINDOW_READOUTS: tuple[str, ...] = typing.get_args(WindowReadout)
NORMALISATIONS: tuple[str, ...] = ("global", "robust", "video", "none")  # what "auto" resolves among, and more

Positive = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]

# Keys older artefacts may hold for options that were measured and removed; all acted in training only (feature
# dropout and noise, the joint expert learnt by SGD), so a model trained with them loads and answers as it did.
RETIRED_KEYS: tuple[str, ...] = ("input_dropout", "input_noise", "joint_expert_fit")


@settings
class FusionConfig:
    """Hyper-parameters of :class:`FusionTransformer`; ``to_dict()`` is what MLflow logs and the service reads back.

    ``ff_dim=None`` means ``4 * d_model`` (:attr:`feedforward_dim`). ``fusion`` picks the full model (``"gated"``)
    or a single-modality ablation baseline (``"visual"``, ``"audio"``) that builds and reads only that branch.
    ``modality_dropout`` is the probability of dropping one whole modality from a training window.
    """

    visual_dim: Positive = 1024
    audio_dim: Positive = 1024
    d_model: Positive = 128
    n_layers: Positive = 2
    n_heads: Positive = 4
    ff_dim: Positive | None = None
    dropout: Share = 0.1
    modality_dropout: Share = 0.1
    n_classes: Annotated[int, Field(ge=2)] = NUM_CLASSES
    max_len: Positive = 1024  # longest window the positional table covers
    fusion: FusionMode = "gated"
    # global: per-dimension standardisation fitted on the training frames (buffers); robust: the same with the median
    # and the interquartile range (a silence floor or a massive activation does not set the scale); video: each
    # video's mean over its present frames subtracted first (identity and recording removed;
    # inference.centred_per_video), then standardised; none: features as they come; auto: robust or video, chosen
    # on the selection split before the model is built (exprfusion.training.normalisation_choice).
    normalisation: Normalisation = "auto"
    # Weight of the per-branch auxiliary losses (a classifier head on each encoder's output, trained on the frames
    # where its modality is present), so that each branch predicts well alone; 0 builds no auxiliary heads.
    aux_loss_weight: Weight = 1.0
    # Of the windows modality dropout hits, the share that loses the face (the rest lose the audio).
    visual_drop_share: Share = 1.0
    # A linear classifier on the window's mean standardised features, added to every frame's logits
    # (WindowMeanReadout): "audio" reads the audio stream, "both" the two streams, "none" builds none.
    window_readout: WindowReadout = "none"
    readout_dropout: Share = 0.0  # dropout on the readout's input, in training only
    # Class-balanced per-frame linear experts (exprfusion.model.linear_experts) beside the deep path, whose smoothed
    # log-probabilities are added to its own at inference with these weights (0 builds none): the joint expert (both
    # streams) in windows with a face, the audio expert in windows without. ``expert_smoothing``: frames on each side
    # over which an expert's probabilities are averaged. Both are fitted by L-BFGS before training
    # (exprfusion.training.expert_fit) and frozen.
    joint_expert_weight: Weight = 4.0
    audio_expert_weight: Weight = 4.0
    expert_smoothing: Annotated[int, Field(ge=0)] = 15

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")

    @property
    def feedforward_dim(self) -> int:
        """The width of the encoders' feed-forward layers: ``ff_dim``, or ``4 * d_model`` when unset."""
        return self.ff_dim or 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a flat dict of plain Python values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "", where: str = "") -> FusionConfig:
        """Build a config from ``to_dict()`` output; missing keys take defaults, unknown keys raise ``InputError``
        naming them by ``path`` (and ``where``, the file they come from)."""
        return validate(cls, dict(values), where=where, path=path or "FusionConfig")

    @classmethod
    def paper(cls, **changes: Any) -> FusionConfig:
        """The paper's model (``PAPER_MODEL``: d 256, 3 layers, p 0.1, global standardisation, no auxiliary heads,
        readout or experts), with ``changes``: what ``benchmarks/ablation.py`` trains."""
        return cls(**{**PAPER_MODEL, **changes})

    @classmethod
    def from_artifact(cls, values: Mapping[str, Any], where: str = "") -> FusionConfig:
        """The config a model artefact stores; the keys of removed training-only options (``RETIRED_KEYS``) are
        dropped, so older artefacts still load."""
        return cls.from_dict({k: v for k, v in values.items() if k not in RETIRED_KEYS}, where=where)


# The paper's model, the reference every ablation row changes one setting of.
PAPER_MODEL: dict[str, Any] = {
    "d_model": 256,
    "n_layers": 3,
    "modality_dropout": 0.1,
    "normalisation": "global",
    "aux_loss_weight": 0.0,
    "visual_drop_share": 0.5,
    "window_readout": "none",
    "joint_expert_weight": 0.0,
    "audio_expert_weight": 0.0,
}
