"""Audio features: any Hugging Face wav2vec2-family speech model (WavLM by default), in chunks stitched without seams.

**Row timing.** The models' convolutional front end turns ``receptive`` samples into one row every ``hop`` samples
(WavLM: 400 and 320 at 16 kHz, 50 rows/s). The waveform is preceded by ``receptive // 2`` zeros, so row ``j`` is
centred exactly on sample ``j * hop``: row ``j`` describes the instant ``j / rate`` of the video's timeline, and
:func:`exprfusion.sources.extract.align.align_at_times` can put it on the frames without an offset.

**Chunks.** A long waveform runs in chunks of ``chunk_seconds`` with ``context_seconds`` more on each side; each pass
keeps only its chunk's rows. The chunk boundaries fall on row boundaries (multiples of ``hop`` samples), so a kept
row sees exactly the samples it would see in one pass over the whole waveform. Where the model's receptive field,
in rows, fits in the context, the stitched rows equal a single pass's rows up to floating-point rounding. WavLM's
attention is global, so for WavLM-large no context makes the two exactly equal; its positional convolution spans
±64 rows (1.3 s), and the default 5 s of context on each side of a 20 s chunk gives every kept row at least 5 s of
real audio around it (30 s per pass), four times that span. The feature extractor's normalisation is computed
once, over the whole waveform, never per chunk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from exprfusion.core.errors import InputError
from exprfusion.sources.extract.checkpoints import autocast, check_layer, load_pretrained
from exprfusion.sources.extract.settings import AudioSettings


def front_end_geometry(config: Any) -> tuple[int, int]:
    """``(receptive, hop)`` in samples of a wav2vec2-family front end (from ``conv_kernel`` and ``conv_stride``)."""
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides or len(kernels) != len(strides):
        raise InputError(
            f"{getattr(config, 'name_or_path', 'the speech model')}: not a wav2vec2-family model "
            "(its config has no conv_kernel/conv_stride)"
        )
    receptive, hop = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        receptive += (kernel - 1) * hop
        hop *= stride
    return receptive, hop


class SpeechEncoder:
    """A speech model with its feature extractor, run in overlapping chunks over a waveform."""

    def __init__(
        self,
        settings: AudioSettings,
        checkpoint: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype | None,
        compile: bool = False,
    ) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        self.settings = settings
        self.device = device
        self.dtype = dtype
        self.feature_extractor = load_pretrained(AutoFeatureExtractor, checkpoint)
        self.model = load_pretrained(AutoModel, checkpoint).eval().to(device)
        check_layer(self.model, settings.layer, "audio")
        self._forward = torch.compile(self.model, dynamic=True) if compile else self.model
        self.receptive, self.hop = front_end_geometry(self.model.config)
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.rate = self.sample_rate / self.hop
        self.dim = int(self.model.config.hidden_size)

    def rows_for(self, duration: float) -> int:
        """Rows that cover the instants 0 .. ``duration`` seconds (the last frame's time)."""
        return math.floor(duration * self.rate + 0.5) + 1

    def model_input(self, waveform: np.ndarray, n_rows: int) -> np.ndarray:
        """The padded, normalised input whose front end gives ``n_rows`` rows, row ``j`` centred at ``j * hop``."""
        front = self.receptive // 2
        span = (n_rows - 1) * self.hop + self.receptive - front
        samples = np.zeros(span, dtype=np.float32)
        kept = waveform[:span]
        samples[: kept.shape[0]] = kept  # audio shorter than the video is followed by silence
        values = self.feature_extractor(samples, sampling_rate=self.sample_rate, return_tensors="np")["input_values"]
        return np.concatenate([np.zeros(front, dtype=np.float32), np.asarray(values, dtype=np.float32).reshape(-1)])

    def encode(self, waveform: np.ndarray, n_rows: int) -> np.ndarray:
        """Features ``[n_rows, D]`` float16 of a mono waveform at ``sample_rate``; row ``j`` at ``j / rate`` s."""
        padded = self.model_input(waveform, n_rows)
        chunk = max(1, round(self.settings.chunk_seconds * self.rate))
        context = math.ceil(self.settings.context_seconds * self.rate)
        spans = []  # (first kept row, end of kept rows, first input row, end of input rows)
        for start in range(0, n_rows, chunk):
            end = min(start + chunk, n_rows)
            spans.append((start, end, max(0, start - context), min(n_rows, end + context)))
        features = np.empty((n_rows, self.dim), dtype=np.float16)
        by_length: dict[int, list[tuple[int, int, int, int]]] = {}
        for span in spans:  # equal-length passes share a batch: no padding, no attention mask
            by_length.setdefault(span[3] - span[2], []).append(span)
        for length, group in by_length.items():
            for first in range(0, len(group), self.settings.batch_size):
                batch = group[first : first + self.settings.batch_size]
                inputs = np.stack(
                    [padded[a * self.hop : (a + length - 1) * self.hop + self.receptive] for *_, a, _ in batch]
                )
                output = self._rows(torch.from_numpy(inputs), length)
                for index, (start, end, a, _) in enumerate(batch):
                    features[start:end] = output[index, start - a : end - a]
        return features

    def _rows(self, inputs: torch.Tensor, expected: int) -> np.ndarray:
        layer = self.settings.layer
        with torch.inference_mode(), autocast(self.device, self.dtype):
            outputs = self._forward(input_values=inputs.to(self.device), output_hidden_states=layer is not None)
        hidden = outputs.hidden_states[layer] if layer is not None else outputs.last_hidden_state
        if hidden.shape[1] != expected:
            raise InputError(
                f"{self.settings.model}: {hidden.shape[1]} output rows for {expected} expected from its front end"
            )
        return hidden.to(torch.float16).cpu().numpy()
