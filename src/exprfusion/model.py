"""The dual-branch audio-visual fusion Transformer, box by box in the order frames flow through it.

    visual (B,T,Dv) ─ FeatureStandardiser ─┐                ┌─ ModalityProjection ─ TemporalEncoder ─┐
                                           ├ ModalityDropout┤                                        ├─ ...
    audio  (B,T,Da) ─ FeatureStandardiser ─┘                └─ ModalityProjection ─ TemporalEncoder ─┘
        ... ─ SafeCrossAttention (V reads A) ─┐
        ... ─ SafeCrossAttention (A reads V) ─┴─ GatedFusion ─ ClassifierHead ─ logits (B,T,C)
    (with aux_loss_weight > 0: each TemporalEncoder ─ auxiliary ClassifierHead ─ that branch's own logits, with
     their own loss in training; a window without any face takes the audio branch's logits, see below)
    (with window_readout: the standardised streams ─ window mean ─ WindowMeanReadout ─ + every frame's logits)
    (with expert weights: the standardised streams ─ LinearExperts (joint; audio) ─ smoothed log-probabilities ─
     + the deep path's log-probabilities, at inference; see exprfusion.linear_experts)

Each modality is standardised per dimension first, with means and spreads fitted on the training frames where it is
present and stored as buffers, so every consumer of the model (predict, evaluate, the service) applies them. With
``normalisation="video"`` each video's mean is subtracted before (exprfusion.inference.centred_per_video); ``"auto"``
is resolved to robust or video on the selection split before the model is built (exprfusion.normalisation_choice). Real
frame features need this: their per-dimension means are often ten times their spread, and transformer hidden
states carry a few dimensions 10–100 times larger than the rest.

With ``aux_loss_weight > 0`` each encoder's output also feeds an auxiliary ClassifierHead whose loss is taken on
the frames its modality covers, so each branch learns to predict alone; with ``visual_drop_share = 1`` modality
dropout hides only the face, so the audio branch is trained on windows where it must answer by itself. A window
without any face is then answered by the audio branch's own head (the fused head, trained mostly on windows with
faces, is the weaker audio-only classifier: measured in the README). These are the project's settings for the
audio path (params.yaml); the paper's defaults here are off and 0.5.

With ``window_readout`` ("audio" or "both") a linear classifier on each window's mean standardised features is added
to every frame's logits: the per-window form of the smoothed logistic-regression baseline, which generalises on few
subjects where the encoders memorise. It helps some corpora and not others (README), so the search decides it.

With ``joint_expert_weight`` / ``audio_expert_weight`` > 0, class-balanced per-frame linear classifiers beside the
deep path (:class:`exprfusion.linear_experts.LinearExperts`) add their smoothed, weighted log-probabilities to the
deep path's at inference: the joint expert (both streams) in windows with a face, the audio expert in windows
without one, where it is what lets the audio path alone match the audio baseline on identity-dominated corpora. The
audio expert, and the joint one with ``joint_expert_fit="lbfgs"``, is fitted before training (exprfusion.expert_fit).

Availability masks (``face_mask``, ``audio_mask``: True = present) travel with the features. Every attention is
"safe": a sample whose keys are all unavailable never forms a softmax over only -inf, so outputs and gradients stay
finite, and the gate falls back to the branch that is present. Cross-attention runs once, after both encoders, in
both directions; each direction reads the other branch's encoder output (not the other cross block's output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from exprfusion.errors import InputError
from exprfusion.labels import NUM_CLASSES
from exprfusion.linear_experts import LinearExperts
from exprfusion.standardiser import FeatureStandardiser
from exprfusion.strict_dicts import dataclass_from_dict

FUSION_MODES: tuple[str, ...] = ("gated", "visual", "audio")
WINDOW_READOUTS: tuple[str, ...] = ("none", "audio", "both")
NORMALISATIONS: tuple[str, ...] = ("global", "robust", "video", "none")
EXPERT_FITS: tuple[str, ...] = ("sgd", "lbfgs")


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
    # on the selection split before the model is built (exprfusion.normalisation_choice).
    normalisation: str = "global"
    # Weight of the per-branch auxiliary losses (a classifier head on each encoder's output, trained on the frames
    # where its modality is present), so that each branch predicts well alone; 0 builds no auxiliary heads.
    aux_loss_weight: float = 0.0
    # Of the windows modality dropout hits, the share that loses the face (the rest lose the audio).
    visual_drop_share: float = 0.5
    # Regularisers on the standardised input features, in training only: each feature value is zeroed with
    # probability ``input_dropout`` (inverted dropout), and Gaussian noise of spread ``input_noise`` (in units of the
    # feature's own spread) is added. Few subjects make a face embedding easy to memorise; both blur identity.
    input_dropout: float = 0.0
    input_noise: float = 0.0
    # A linear classifier on the window's mean standardised features, added to every frame's logits
    # (WindowMeanReadout): "audio" reads the audio stream, "both" the two streams, "none" builds none.
    window_readout: str = "none"
    readout_dropout: float = 0.0  # dropout on the readout's input, in training only
    # Class-balanced per-frame linear experts (exprfusion.linear_experts) beside the deep path, whose smoothed
    # log-probabilities are added to its own at inference with these weights (0 builds none): the joint expert (both
    # streams) in windows with a face, the audio expert in windows without. ``expert_smoothing``: frames on each side
    # over which an expert's probabilities are averaged.
    joint_expert_weight: float = 0.0
    audio_expert_weight: float = 0.0
    expert_smoothing: int = 15
    # How the joint expert learns: "lbfgs" fits it before training, as the audio expert is (exprfusion.expert_fit),
    # and freezes it; "sgd" trains it with the model under its own class-balanced loss.
    joint_expert_fit: str = "sgd"

    def __post_init__(self) -> None:
        if self.ff_dim is None:
            self.ff_dim = 4 * self.d_model
        for name in ("visual_dim", "audio_dim", "d_model", "n_layers", "n_heads", "ff_dim", "max_len"):
            if getattr(self, name) < 1:
                raise InputError(f"FusionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise InputError(f"FusionConfig.n_heads={self.n_heads} must divide d_model={self.d_model}")
        for name in ("dropout", "modality_dropout", "visual_drop_share", "input_dropout", "readout_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"FusionConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.n_classes < 2:
            raise InputError(f"FusionConfig.n_classes must be >= 2, got {self.n_classes}")
        if self.fusion not in FUSION_MODES:
            raise InputError(f"FusionConfig.fusion must be one of {FUSION_MODES}, got {self.fusion!r}")
        if self.input_noise < 0:
            raise InputError(f"FusionConfig.input_noise must be >= 0, got {self.input_noise}")
        for name in ("aux_loss_weight", "joint_expert_weight", "audio_expert_weight", "expert_smoothing"):
            if getattr(self, name) < 0:
                raise InputError(f"FusionConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.window_readout not in WINDOW_READOUTS:
            raise InputError(
                f"FusionConfig.window_readout must be one of {WINDOW_READOUTS}, got {self.window_readout!r}"
            )
        if self.joint_expert_fit not in EXPERT_FITS:
            raise InputError(
                f"FusionConfig.joint_expert_fit must be one of {EXPERT_FITS}, got {self.joint_expert_fit!r}"
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


def _safe_key_padding(available: Tensor) -> tuple[Tensor, Tensor]:
    """Turn an availability mask (B, T) into a key padding mask that never masks a whole row.

    Returns ``(key_padding, has_any)``: ``key_padding`` is True where a key must be ignored, except in rows with
    no available key at all, which are left fully visible (a softmax over only -inf would be NaN); ``has_any`` (B,)
    tells the caller which rows to zero afterwards.
    """
    has_any = available.any(dim=1)  # (B,)
    key_padding = ~available & has_any[:, None]  # (B, T)
    return key_padding, has_any


class ModalityDropout(nn.Module):
    """In training, drop one whole modality from a window with probability ``p`` (the face with ``visual_share``).

    Dropping sets that branch's availability mask all False; the model then zeroes its features. A modality is
    never dropped when the other one has no available frame in the window, so a window never loses both.
    Draws come from ``generator`` when given, else from the global RNG (deterministic under ``torch.manual_seed``).
    """

    def __init__(self, p: float, visual_share: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.visual_share = visual_share

    def forward(
        self, face_mask: Tensor, audio_mask: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return the (face_mask, audio_mask) pair after dropout; unchanged in eval mode or when ``p == 0``."""
        if not self.training or self.p == 0.0:
            return face_mask, audio_mask
        batch = face_mask.shape[0]
        device = generator.device if generator is not None else face_mask.device
        draws = torch.rand(2, batch, generator=generator, device=device).to(face_mask.device)  # (2, B)
        drop_window = draws[0] < self.p
        choose_visual = draws[1] < self.visual_share
        drop_visual = drop_window & choose_visual & audio_mask.any(dim=1)  # (B,)
        drop_audio = drop_window & ~choose_visual & face_mask.any(dim=1)
        return face_mask & ~drop_visual[:, None], audio_mask & ~drop_audio[:, None]


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """Return the fixed sinusoidal positional table of "Attention Is All You Need", shape (max_len, d_model)."""
    positions = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    frequencies = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    angles = positions * frequencies  # (L, ceil(d/2))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


class ModalityProjection(nn.Module):
    """Project one modality's frame features to the model width: Linear → LayerNorm → + positions → dropout."""

    def __init__(self, in_dim: int, config: FusionConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        # Not persistent: the table is a function of (max_len, d_model) and need not bloat checkpoints.
        self.register_buffer("positions", sinusoidal_positions(config.max_len, config.d_model), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        """Map features (B, T, in_dim) to (B, T, d_model)."""
        length = features.shape[1]
        if length > self.positions.shape[0]:
            raise ValueError(f"Window of {length} frames exceeds max_len={self.positions.shape[0]}")
        hidden = self.norm(self.linear(features))  # (B, T, D)
        return self.dropout(hidden + self.positions[:length])


class TemporalEncoder(nn.Module):
    """A pre-norm GELU Transformer encoder over one branch's frames, attending only to available frames.

    Nested tensors are disabled (they drop padded rows), and a window with no available frame at all attends to
    every frame and is then zeroed, so its output is finite and carries no information.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.ff_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.n_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )

    def forward(self, hidden: Tensor, available: Tensor) -> Tensor:
        """Encode hidden (B, T, D) given availability (B, T) bool; returns (B, T, D)."""
        key_padding, has_any = _safe_key_padding(available)
        encoded = self.encoder(hidden, src_key_padding_mask=key_padding)  # (B, T, D)
        return encoded.masked_fill(~has_any[:, None, None], 0.0)


class SafeCrossAttention(nn.Module):
    """Queries from one branch attend to the other branch's available frames; residual + LayerNorm around it.

    When the other branch has no available frame in a window, the attention output for that window is zero (the
    queries pass through the residual alone); the softmax is never taken over an all-masked row, so neither the
    output nor its gradients can be NaN.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(config.d_model, config.n_heads, dropout=config.dropout, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, queries: Tensor, keys: Tensor, key_available: Tensor) -> Tensor:
        """Attend queries (B, Tq, D) to keys (B, Tk, D) where ``key_available`` (B, Tk) is True; returns (B, Tq, D)."""
        key_padding, has_any = _safe_key_padding(key_available)
        attended, _ = self.attention(queries, keys, keys, key_padding_mask=key_padding, need_weights=False)
        attended = attended.masked_fill(~has_any[:, None, None], 0.0)  # (B, Tq, D)
        return self.norm(queries + self.dropout(attended))


class GatedFusion(nn.Module):
    """Per-frame learnable gate ``g = sigmoid(W [h_v; h_a] + b)``, ``fused = g * h_v + (1 - g) * h_a``.

    Availability overrides the learned gate so the model leans on the branch that is present: ``g = 0`` where the
    face is missing (audio only), ``g = 1`` where the audio is missing, ``g = 1/2`` where both are missing.
    The gate is a vector (one weight per channel), as in gated multimodal units.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * config.d_model, config.d_model)

    def forward(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor) -> Tensor:
        """Fuse visual and audio (B, T, D) frame by frame under masks (B, T); returns (B, T, D)."""
        gate = torch.sigmoid(self.gate(torch.cat([visual, audio], dim=-1)))  # (B, T, D)
        only_visual = (face_mask & ~audio_mask)[..., None]  # (B, T, 1)
        only_audio = (~face_mask & audio_mask)[..., None]
        neither = (~face_mask & ~audio_mask)[..., None]
        gate = gate.masked_fill(only_visual, 1.0).masked_fill(only_audio, 0.0).masked_fill(neither, 0.5)
        return gate * visual + (1.0 - gate) * audio


class ClassifierHead(nn.Sequential):
    """Per-frame MLP head: LayerNorm → Linear(d, d) → GELU → dropout → Linear(d, n_classes)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(
            nn.LayerNorm(config.d_model),
            nn.Linear(config.d_model, config.d_model),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_model, config.n_classes),
        )


class WindowMeanReadout(nn.Module):
    """A linear classifier on the mean of each stream's standardised features over the window's present frames
    (and the share of frames where it is present), added to every frame's logits.

    It is the per-window form of the smoothed logistic regression a user builds first (exprfusion.baseline): with
    few subjects, a linear read of averaged features generalises where a deep encoder memorises, so the encoders
    only have to learn what it cannot. Zero-initialised: training starts from the deep path alone.
    """

    def __init__(self, stream_dims: list[int], config: FusionConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.readout_dropout)
        self.linear = nn.Linear(sum(dim + 1 for dim in stream_dims), config.n_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, streams: list[tuple[Tensor, Tensor]]) -> Tensor:
        """``streams``: ``(features (B, T, D), available (B, T))`` pairs, features already zero where absent;
        returns logits (B, 1, n_classes), one row per window."""
        parts = []
        for features, available in streams:
            present = available.to(features.dtype).sum(dim=1, keepdim=True)  # (B, 1)
            parts.append(features.sum(dim=1) / present.clamp(min=1.0))  # (B, D): the mean over present frames
            parts.append(present / available.shape[1])  # (B, 1): the share of frames where the stream is present
        return self.linear(self.dropout(torch.cat(parts, dim=-1)))[:, None, :]


class FusionTransformer(nn.Module):
    """Frame-level expression classifier over visual and audio feature sequences (see the module diagram).

    With ``fusion="visual"`` or ``"audio"`` only that branch is built and the other inputs are ignored entirely.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if config.normalisation == "auto":
            raise InputError(
                "normalisation 'auto' is decided from the training data before a model is built "
                "(exprfusion.normalisation_choice.resolve_normalisation; train_model and the search do it)"
            )
        self.config = config
        uses_visual = config.fusion in ("gated", "visual")
        uses_audio = config.fusion in ("gated", "audio")
        if uses_visual:
            self.visual_standardiser = FeatureStandardiser(config.visual_dim)
            self.visual_projection = ModalityProjection(config.visual_dim, config)
            self.visual_encoder = TemporalEncoder(config)
        if uses_audio:
            self.audio_standardiser = FeatureStandardiser(config.audio_dim)
            self.audio_projection = ModalityProjection(config.audio_dim, config)
            self.audio_encoder = TemporalEncoder(config)
        if uses_visual and uses_audio:
            self.modality_dropout = ModalityDropout(config.modality_dropout, config.visual_drop_share)
            if config.aux_loss_weight > 0:
                self.visual_aux_head = ClassifierHead(config)
                self.audio_aux_head = ClassifierHead(config)
            self.visual_reads_audio = SafeCrossAttention(config)
            self.audio_reads_visual = SafeCrossAttention(config)
            self.fusion = GatedFusion(config)
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.head = ClassifierHead(config)
        self.readout_streams = self._readout_streams(uses_visual, uses_audio)
        if self.readout_streams:
            dims = [getattr(config, f"{branch}_dim") for branch in self.readout_streams]
            self.window_readout = WindowMeanReadout(dims, config)
        self.linear_experts: LinearExperts | None = None
        if uses_visual and uses_audio and (config.joint_expert_weight > 0 or config.audio_expert_weight > 0):
            weights = {"joint": config.joint_expert_weight, "audio": config.audio_expert_weight}
            fitted = ("audio", "joint") if config.joint_expert_fit == "lbfgs" else ("audio",)
            self.linear_experts = LinearExperts(
                config.visual_dim, config.audio_dim, config.n_classes, weights, config.expert_smoothing, fitted
            )

    def _readout_streams(self, uses_visual: bool, uses_audio: bool) -> tuple[str, ...]:
        """The branches the window readout reads (none without one)."""
        wanted = {"none": (), "audio": ("audio",), "both": ("visual", "audio")}[self.config.window_readout]
        built = {"visual": uses_visual, "audio": uses_audio}
        return tuple(branch for branch in wanted if built[branch])

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters; inputs are cast to it."""
        return self.head[-1].weight.dtype

    def fit_standardisation(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor) -> None:
        """Fit each branch's standardiser on the training frames (N, dim) where that modality is present.

        With ``normalisation="none"`` the standardisers stay the identity.
        """
        if self.config.normalisation == "none":
            return
        robust = self.config.normalisation == "robust"
        if hasattr(self, "visual_standardiser"):
            self.visual_standardiser.fit(visual, face_mask, robust)
        if hasattr(self, "audio_standardiser"):
            self.audio_standardiser.fit(audio, audio_mask, robust)

    def count_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable, by default) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(
        self,
        visual: Tensor,
        audio: Tensor,
        face_mask: Tensor,
        audio_mask: Tensor,
        *,
        generator: torch.Generator | None = None,
        branch_outputs: dict[str, tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """Return per-frame logits (B, T, n_classes); with linear experts, in eval mode, the log-probabilities of the
        deep path plus the experts' weighted log-evidence (scores that vote and argmax like logits).

        Args:
            visual: face features (B, T, visual_dim), any float dtype (float16 on disk); ignored if ``fusion="audio"``.
            audio: audio features (B, T, audio_dim), aligned to video frames; ignored if ``fusion="visual"``.
            face_mask: (B, T) bool, True where a face was found.
            audio_mask: (B, T) bool, True where audio is present.
            generator: optional RNG for modality dropout (training only).
            branch_outputs: a dict to fill, when the model has auxiliary heads, with ``{"visual": (logits, mask),
                "audio": (logits, mask)}``: each branch's own logits and the frames it saw (after modality dropout).
        """
        face_mask, audio_mask = face_mask.bool(), audio_mask.bool()
        if self.config.fusion == "gated":
            face_mask, audio_mask = self.modality_dropout(face_mask, audio_mask, generator=generator)
        available = {"visual": face_mask, "audio": audio_mask}
        inputs = {"visual": visual, "audio": audio}
        standardised = {
            branch: self.standardise(inputs[branch], available[branch], branch)
            for branch in ("visual", "audio")
            if hasattr(self, f"{branch}_standardiser")
        }
        fused, audio_alone = self._branch_logits(standardised, face_mask, audio_mask, branch_outputs)
        if self.readout_streams:
            readout = self.window_readout([(standardised[b], available[b]) for b in self.readout_streams])
            fused = fused + readout
            audio_alone = None if audio_alone is None else audio_alone + readout
        if self.linear_experts is not None:
            experts = self.linear_experts(standardised["visual"], standardised["audio"], face_mask, audio_mask)
            if branch_outputs is not None and "joint" in self.linear_experts.trained:  # fitted ones do not learn
                branch_outputs["joint_expert"] = experts["joint"]
            if not self.training:
                return self.linear_experts.combine(fused, audio_alone, experts, face_mask)
        if audio_alone is None:
            return fused
        # A window without any face is answered by the audio branch's own head, trained on every window to predict
        # from the audio alone; the fused head sees such windows only under modality dropout. (Where the audio is
        # missing too, either head answers a blank input; the audio head's answer scored 0.01 higher, measured with
        # every face hidden on both synthetic profiles.)
        faceless = ~face_mask.any(dim=1)[:, None, None]  # (B, 1, 1)
        return torch.where(faceless, audio_alone, fused)

    def _branch_logits(
        self,
        standardised: dict[str, Tensor],
        face_mask: Tensor,
        audio_mask: Tensor,
        branch_outputs: dict[str, tuple[Tensor, Tensor]] | None,
    ) -> tuple[Tensor, Tensor | None]:
        """The encoders, cross-attention, fusion and heads over the standardised streams: the head's logits
        (B, T, C), and the audio branch's own logits (None without auxiliary heads)."""
        if self.config.fusion == "visual":
            return self.head(self._encode(standardised["visual"], face_mask, "visual")), None
        if self.config.fusion == "audio":
            return self.head(self._encode(standardised["audio"], audio_mask, "audio")), None
        visual_frames = self._encode(standardised["visual"], face_mask, "visual")
        audio_frames = self._encode(standardised["audio"], audio_mask, "audio")
        audio_alone = None
        if hasattr(self, "audio_aux_head"):
            audio_alone = self.audio_aux_head(audio_frames)  # (B, T, C)
            if branch_outputs is not None:
                branch_outputs["visual"] = (self.visual_aux_head(visual_frames), face_mask)
                branch_outputs["audio"] = (audio_alone, audio_mask)
        # Both directions read the other branch's encoder output, once, after the encoders.
        visual_frames, audio_frames = (
            self.visual_reads_audio(visual_frames, audio_frames, audio_mask),
            self.audio_reads_visual(audio_frames, visual_frames, face_mask),
        )
        frames = self.fusion(visual_frames, audio_frames, face_mask, audio_mask)  # (B, T, D)
        return self.head(frames), audio_alone

    def standardise(self, features: Tensor, available: Tensor, branch: str) -> Tensor:
        """One branch's features (B, T, in_dim) standardised, and zero where the modality is absent."""
        standardiser: FeatureStandardiser = getattr(self, f"{branch}_standardiser")
        if features.shape[:2] != available.shape:
            raise ValueError(f"Features {tuple(features.shape)} do not match mask {tuple(available.shape)}")
        if features.shape[-1] != standardiser.mean.shape[0]:
            raise ValueError(f"Expected feature dim {standardiser.mean.shape[0]}, got {features.shape[-1]}")
        # Unavailable frames may hold anything (zeros, stale values): blank them so they carry no information.
        return standardiser(features.to(self.dtype)).masked_fill(~available[..., None], 0.0)

    def _encode(self, features: Tensor, available: Tensor, branch: str) -> Tensor:
        """Project and encode one branch's standardised features (B, T, in_dim) → (B, T, D)."""
        projection: ModalityProjection = getattr(self, f"{branch}_projection")
        encoder: TemporalEncoder = getattr(self, f"{branch}_encoder")
        if self.training and self.config.input_noise > 0:
            features = features + self.config.input_noise * torch.randn_like(features)
        features = self.input_dropout(features).masked_fill(~available[..., None], 0.0)
        return encoder(projection(features), available)
