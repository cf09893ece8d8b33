"""The fusion model's hyper-parameters: :class:`FusionConfig`, validated on construction, and its allowed values.

The model that reads it is :class:`exprfusion.model.fusion_transformer.FusionTransformer`; ``to_dict()`` is what MLflow
logs, the
artefact stores and the service reads back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from exprfusion.core.errors import InputError
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.core.strict_dicts import dataclass_from_dict

FUSION_MODES: tuple[str, ...] = ("gated", "visual", "audio")
WINDOW_READOUTS: tuple[str, ...] = ("none", "audio", "both")
NORMALISATIONS: tuple[str, ...] = ("global", "robust", "video", "none")


@dataclass
class FusionConfig:
    """Hyper-parameters of :class:`FusionTransformer`; ``to_dict()`` is what MLflow logs and the service reads back.

    ``ff_dim=None`` means ``4 * d_model`` and is resolved at construction. ``fusion`` picks the full model
    (``"gated"``) or a single-modality ablation baseline (``"visual"``, ``"audio"``) that builds and reads only
    that branch. ``modality_dropout`` is the probability of dropping one whole modality from a training window.
    """

    visual_dim: int = 1024
    audio_dim: int = 1024
    d_model: int = 256
    n_layers: int = 3
    n_heads: int = 4
    ff_dim: int | None = None
    dropout: float = 0.1
    modality_dropout: float = 0.1
    n_classes: int = NUM_CLASSES
    max_len: int = 1024
    fusion: str = "gated"
    # global: per-dimension standardisation fitted on the training frames (buffers); robust: the same with the median
    # and the interquartile range (a silence floor or a massive activation does not set the scale); video: each
    # video's mean over its present frames subtracted first (identity and recording removed;
    # inference.centred_per_video), then standardised; none: features as they come; auto: robust or video, chosen
    # on the selection split before the model is built (exprfusion.training.normalisation_choice).
    normalisation: str = "global"
    # Weight of the per-branch auxiliary losses (a classifier head on each encoder's output, trained on the frames
    # where its modality is present), so that each branch predicts well alone; 0 builds no auxiliary heads.
    aux_loss_weight: float = 0.0
    # Of the windows modality dropout hits, the share that loses the face (the rest lose the audio).
    visual_drop_share: float = 0.5
    # A linear classifier on the window's mean standardised features, added to every frame's logits
    # (WindowMeanReadout): "audio" reads the audio stream, "both" the two streams, "none" builds none.
    window_readout: str = "none"
    readout_dropout: float = 0.0  # dropout on the readout's input, in training only
    # Class-balanced per-frame linear experts (exprfusion.model.linear_experts) beside the deep path, whose smoothed
    # log-probabilities are added to its own at inference with these weights (0 builds none): the joint expert (both
    # streams) in windows with a face, the audio expert in windows without. ``expert_smoothing``: frames on each side
    # over which an expert's probabilities are averaged. Both are fitted by L-BFGS before training
    # (exprfusion.training.expert_fit) and frozen.
    joint_expert_weight: float = 0.0
    audio_expert_weight: float = 0.0
    expert_smoothing: int = 15

    def __post_init__(self) -> None:
        if self.ff_dim is None:
            self.ff_dim = 4 * self.d_model
        for name in ("visual_dim", "audio_dim", "d_model", "n_layers", "n_heads", "ff_dim", "max_len"):
            if getattr(self, name) < 1:
                raise InputError(f"FusionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise InputError(f"FusionConfig.n_heads={self.n_heads} must divide d_model={self.d_model}")
        for name in ("dropout", "modality_dropout", "visual_drop_share", "readout_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"FusionConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.n_classes < 2:
            raise InputError(f"FusionConfig.n_classes must be >= 2, got {self.n_classes}")
        if self.fusion not in FUSION_MODES:
            raise InputError(f"FusionConfig.fusion must be one of {FUSION_MODES}, got {self.fusion!r}")
        for name in ("aux_loss_weight", "joint_expert_weight", "audio_expert_weight", "expert_smoothing"):
            if getattr(self, name) < 0:
                raise InputError(f"FusionConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.window_readout not in WINDOW_READOUTS:
            raise InputError(
                f"FusionConfig.window_readout must be one of {WINDOW_READOUTS}, got {self.window_readout!r}"
            )
        if self.normalisation not in (*NORMALISATIONS, "auto"):
            raise InputError(
                f"FusionConfig.normalisation must be one of {(*NORMALISATIONS, 'auto')}, got {self.normalisation!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a flat dict of plain Python values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "") -> FusionConfig:
        """Build a config from ``to_dict()`` output; missing keys take defaults, unknown keys raise ``InputError``."""
        return dataclass_from_dict(cls, values, "FusionConfig keys", path=path)
