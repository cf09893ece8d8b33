"""Class-balanced per-frame linear experts beside the deep path of the fusion model.

Two linear classifiers read the model's standardised streams frame by frame, like the logistic-regression baseline
(exprfusion.evaluation.baseline) a user fits first:

- ``joint``: both streams (each zero where absent) and a presence flag per stream, on frames with either input;
- ``audio``: the audio stream alone, on frames with audio.

Both experts are fitted once before training (exprfusion.training.expert_fit), by L-BFGS with the baseline's strong
L2 penalty, balanced class weights and sample size, and stay frozen: trained by SGD with the model instead, the audio
expert scored 0.30 on the realistic profile with every face hidden, against 0.40 fitted (README, "Linear experts").

At inference, each expert's frame probabilities are averaged over ``±smoothing`` frames of the window where its input
is present, and its weight times their logarithm is added to the deep path's log-probabilities (a product of
experts). A window without any face takes the audio expert beside the audio branch's own head; every other window
takes the joint expert beside the fused head.

Why: on few subjects the deep encoders memorise, and without class balance rare classes are never predicted. A
balanced linear read of the audio alone is what makes the model's audio path match the audio baseline (README,
"Linear experts").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EXPERT_NAMES: tuple[str, ...] = ("joint", "audio")


def present_mean(values: Tensor, present: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` (B, T, C) over the present frames within ``±radius`` frames of each frame.

    Returns the means (B, T, C), zero where no frame of the neighbourhood is present, and a bool (B, T) that says
    where at least one was.
    """
    weights = present.to(values.dtype)[..., None]  # (B, T, 1)
    stacked = torch.cat([values * weights, weights], dim=-1)  # (B, T, C + 1)
    padded = F.pad(stacked.cumsum(dim=1), (0, 0, 1, 0))  # (B, T + 1, C + 1): prefix sums, 0 first
    n_frames = values.shape[1]
    frames = torch.arange(n_frames, device=values.device)
    upper = (frames + radius + 1).clamp(max=n_frames)
    lower = (frames - radius).clamp(min=0)
    sums = padded[:, upper] - padded[:, lower]  # (B, T, C + 1)
    counts = sums[..., -1:]
    return sums[..., :-1] / counts.clamp(min=1.0), counts[..., 0] > 0


class LinearExperts(nn.Module):
    """The ``joint`` and ``audio`` linear experts over standardised streams; an expert of weight 0 is not built.

    Every built expert is fitted once, before training, by :func:`exprfusion.training.expert_fit.fit_linear_experts`
    (strong L2, as the baseline), and is then frozen; it starts at zero until then.
    """

    def __init__(self, visual_dim: int, audio_dim: int, n_classes: int, weights: dict[str, float], smoothing: int):
        super().__init__()
        self.weights = {name: float(weights.get(name, 0.0)) for name in EXPERT_NAMES}
        self.smoothing = smoothing
        self.fitted = tuple(name for name in EXPERT_NAMES if self.weights[name] > 0)
        self.joint = nn.Linear(visual_dim + 1 + audio_dim + 1, n_classes) if self.weights["joint"] > 0 else None
        self.audio = nn.Linear(audio_dim, n_classes) if self.weights["audio"] > 0 else None
        for layer in (self.joint, self.audio):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        for name in self.fitted:
            getattr(self, name).requires_grad_(False)

    def forward(
        self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Each built expert's frame logits (B, T, C) and the frames it reads (B, T), from standardised streams
        that are already zero where absent."""
        logits = self.frame_logits(visual, audio, face_mask, audio_mask)
        return {name: (values, self.present(name, face_mask, audio_mask)) for name, values in logits.items()}

    def frame_logits(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor) -> dict[str, Tensor]:
        """Each built expert's logits (..., C) of every frame alone (any leading shape), from standardised streams
        that are already zero where absent."""
        outputs = {}
        for name in EXPERT_NAMES:
            layer = getattr(self, name)
            if layer is not None:
                outputs[name] = layer(self.inputs(name, visual, audio, face_mask, audio_mask)[0])
        return outputs

    @staticmethod
    def inputs(
        name: str, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """What the expert ``name`` reads from standardised streams that are zero where absent (``[..., dim]``), and
        the frames where its input exists (``joint``: either stream, with a presence flag per stream)."""
        present = LinearExperts.present(name, face_mask, audio_mask)
        if name == "audio":
            return audio, present
        flags = [face_mask.to(visual.dtype)[..., None], audio_mask.to(audio.dtype)[..., None]]
        return torch.cat([visual, flags[0], audio, flags[1]], dim=-1), present

    @staticmethod
    def present(name: str, face_mask: Tensor, audio_mask: Tensor) -> Tensor:
        """The frames where the expert ``name`` has an input: audio for ``audio``, either stream for ``joint``."""
        return audio_mask if name == "audio" else face_mask | audio_mask

    def log_evidence(self, name: str, logits: Tensor, present: Tensor) -> Tensor:
        """The expert's weight × the log of its probabilities averaged over ``±smoothing`` present frames; zero (no
        opinion) at frames with no present frame near them."""
        probabilities, covered = present_mean(logits.float().softmax(dim=-1), present, self.smoothing)
        evidence = self.weights[name] * probabilities.clamp(min=1e-6).log()
        return torch.where(covered[..., None], evidence, torch.zeros_like(evidence))

    def combine(
        self,
        fused: Tensor,
        audio_alone: Tensor | None,
        experts: dict[str, tuple[Tensor, Tensor]],
        face_mask: Tensor,
    ) -> Tensor:
        """The model's answer: log-probabilities of the deep path plus the experts' weighted log-evidence.

        A window without any face combines ``audio_alone`` (the audio branch's head; the fused head when None) with
        the audio expert; every other window combines the fused head with the joint expert.
        """
        with_faces = F.log_softmax(fused.float(), dim=-1)
        if "joint" in experts:
            with_faces = with_faces + self.log_evidence("joint", *experts["joint"])
        faceless = F.log_softmax((fused if audio_alone is None else audio_alone).float(), dim=-1)
        if "audio" in experts:
            faceless = faceless + self.log_evidence("audio", *experts["audio"])
        no_face = ~face_mask.any(dim=1)[:, None, None]  # (B, 1, 1)
        # float32 even under bf16 autocast: weighted log-probabilities span tens of units, where bf16's steps are
        # coarse enough to flip close votes.
        return torch.where(no_face, faceless, with_faces)
