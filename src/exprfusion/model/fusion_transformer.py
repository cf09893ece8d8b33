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
     + the deep path's log-probabilities, at inference; see exprfusion.model.linear_experts)

Each modality is standardised per dimension first, with means and spreads fitted on the training frames where it is
present and stored as buffers, so every consumer of the model (predict, evaluate, the service) applies them. With
``normalisation="video"`` each video's mean is subtracted before
(exprfusion.inference.window_logits.centred_per_video); ``"auto"``
is resolved to robust or video on the selection split before the model is built
(exprfusion.training.normalisation_choice). Real
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
deep path (:class:`exprfusion.model.linear_experts.LinearExperts`) add their smoothed, weighted log-probabilities to the
deep path's at inference: the joint expert (both streams) in windows with a face, the audio expert in windows
without one, where it is what lets the audio path alone match the audio baseline on identity-dominated corpora. Both
experts are fitted before training (exprfusion.training.expert_fit) and stay frozen.

Availability masks (``face_mask``, ``audio_mask``: True = present) travel with the features. Every attention is
"safe": a sample whose keys are all unavailable never forms a softmax over only -inf, so outputs and gradients stay
finite, and the gate falls back to the branch that is present. Cross-attention runs once, after both encoders, in
both directions; each direction reads the other branch's encoder output (not the other cross block's output).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from exprfusion.core.errors import InputError
from exprfusion.model.blocks import (
    ClassifierHead,
    GatedFusion,
    ModalityDropout,
    ModalityProjection,
    SafeCrossAttention,
    TemporalEncoder,
    WindowMeanReadout,
)
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.linear_experts import LinearExperts
from exprfusion.model.standardiser import FeatureStandardiser

# The config and the blocks live in their own modules; importing them from here keeps working.


class FusionTransformer(nn.Module):
    """Frame-level expression classifier over visual and audio feature sequences (see the module diagram).

    With ``fusion="visual"`` or ``"audio"`` only that branch is built and the other inputs are ignored entirely.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if config.normalisation == "auto":
            raise InputError(
                "normalisation 'auto' is decided from the training data before a model is built "
                "(exprfusion.training.normalisation_choice.resolve_normalisation; train_model and the search do it)"
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
        self.head = ClassifierHead(config)
        self.readout_streams = self._readout_streams(uses_visual, uses_audio)
        if self.readout_streams:
            dims = [getattr(config, f"{branch}_dim") for branch in self.readout_streams]
            self.window_readout = WindowMeanReadout(dims, config)
        self.linear_experts: LinearExperts | None = None
        if uses_visual and uses_audio and (config.joint_expert_weight > 0 or config.audio_expert_weight > 0):
            weights = {"joint": config.joint_expert_weight, "audio": config.audio_expert_weight}
            self.linear_experts = LinearExperts(
                config.visual_dim, config.audio_dim, config.n_classes, weights, config.expert_smoothing
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
        frames = self.frame_stage(visual, audio, face_mask, audio_mask)
        return self.window_stage(frames, face_mask, audio_mask, branch_outputs=branch_outputs)

    def frame_stage(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor) -> dict[str, Tensor]:
        """What the model computes of each frame alone, for inputs of any leading shape (``(..., dim)``, masks
        ``(...)``): each branch's standardised features (zero where absent) projected to the model width, before the
        window positions (``visual``, ``audio``); in eval mode the linear experts' frame logits (``expert_<name>``);
        with a window readout, its streams' standardised features (``standardised_<branch>``).

        :meth:`forward` is :meth:`window_stage` over this; inference computes it once per frame of a video, not once
        per window holding the frame, and gathers its rows into windows
        (:func:`exprfusion.inference.window_logits.window_logits`).
        """
        available = {"visual": face_mask.bool(), "audio": audio_mask.bool()}
        inputs = {"visual": visual, "audio": audio}
        standardised = {
            branch: self.standardise(inputs[branch], available[branch], branch)
            for branch in ("visual", "audio")
            if hasattr(self, f"{branch}_standardiser")
        }
        frames = {branch: getattr(self, f"{branch}_projection").frame_part(x) for branch, x in standardised.items()}
        for branch in self.readout_streams:
            frames[f"standardised_{branch}"] = standardised[branch]
        if self.linear_experts is not None and not self.training:
            logits = self.linear_experts.frame_logits(
                standardised["visual"], standardised["audio"], available["visual"], available["audio"]
            )
            frames.update({f"expert_{name}": values for name, values in logits.items()})
        return frames

    def window_stage(
        self,
        frames: dict[str, Tensor],
        face_mask: Tensor,
        audio_mask: Tensor,
        *,
        branch_outputs: dict[str, tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """Per-frame logits (B, T, C) of windows of :meth:`frame_stage` rows (``frames``' values (B, T, ...)) and the
        windows' masks (B, T) (see :meth:`forward`)."""
        face_mask, audio_mask = face_mask.bool(), audio_mask.bool()
        available = {"visual": face_mask, "audio": audio_mask}
        fused, audio_alone = self._branch_logits(frames, face_mask, audio_mask, branch_outputs)
        if self.readout_streams:
            streams = [(frames[f"standardised_{b}"], available[b]) for b in self.readout_streams]
            readout = self.window_readout(streams)
            fused = fused + readout
            audio_alone = None if audio_alone is None else audio_alone + readout
        if self.linear_experts is not None and not self.training:  # fitted and frozen: no training loss of theirs
            experts = {
                name: (frames[f"expert_{name}"], LinearExperts.present(name, face_mask, audio_mask))
                for name in self.linear_experts.fitted
            }
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
        frames: dict[str, Tensor],
        face_mask: Tensor,
        audio_mask: Tensor,
        branch_outputs: dict[str, tuple[Tensor, Tensor]] | None,
    ) -> tuple[Tensor, Tensor | None]:
        """The encoders, cross-attention, fusion and heads over the projected streams (B, T, D): the head's logits
        (B, T, C), and the audio branch's own logits (None without auxiliary heads)."""
        if self.config.fusion == "visual":
            return self.head(self._encode(frames["visual"], face_mask, "visual")), None
        if self.config.fusion == "audio":
            return self.head(self._encode(frames["audio"], audio_mask, "audio")), None
        visual_frames = self._encode(frames["visual"], face_mask, "visual")
        audio_frames = self._encode(frames["audio"], audio_mask, "audio")
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
        """One branch's features (B, T, in_dim) (any leading shape) standardised, and zero where the modality is
        absent."""
        standardiser: FeatureStandardiser = getattr(self, f"{branch}_standardiser")
        if features.shape[:-1] != available.shape:
            raise ValueError(f"Features {tuple(features.shape)} do not match mask {tuple(available.shape)}")
        if features.shape[-1] != standardiser.mean.shape[0]:
            raise ValueError(f"Expected feature dim {standardiser.mean.shape[0]}, got {features.shape[-1]}")
        # Unavailable frames may hold anything (zeros, stale values): blank them so they carry no information.
        return standardiser.standardised_copy(features, self.dtype).masked_fill_(~available[..., None], 0.0)

    def _encode(self, hidden: Tensor, available: Tensor, branch: str) -> Tensor:
        """Position and encode one branch's projected frames (B, T, D) → (B, T, D)."""
        projection: ModalityProjection = getattr(self, f"{branch}_projection")
        encoder: TemporalEncoder = getattr(self, f"{branch}_encoder")
        return encoder(projection.positioned(hidden), available)
