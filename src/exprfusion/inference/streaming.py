"""Labels while the video is still running: frames' features in chunks of any size, final labels out.

:class:`StreamingPredictor` runs the offline pipeline (:func:`exprfusion.inference.predict.predict_video`: windows on
the
grid ``0, stride, 2*stride, …``, logit soft voting, argmax, median filter) incrementally. A frame's label is
released once nothing that arrives later can change it, and then it equals the offline label of the whole video
exactly:

* a frame's vote is final once every grid window covering it is complete, and the end-aligned window (which the
  offline pipeline adds at ``n - window`` when the grid misses the end, ``n`` being the final length) cannot cover
  it: with ``m`` frames received that holds for frames ``< m - window``;
* its median-filtered label is final once the votes of the ``median_kernel // 2`` frames after it are final.

So after ``m`` frames, frames ``0 .. m - window - median_kernel // 2 - 1`` are final: the newest final label lags
the newest frame by at most ``window + median_kernel // 2`` frames (the defaults, 32 and 31: 47 frames, 1.57 s at
30 fps), plus the time to compute it. :meth:`StreamingPredictor.close` releases the rest: the last
``window + median_kernel // 2`` frames, computed with the end-aligned window exactly as offline. The difference to
offline is therefore one of timing only: those last frames are held back until the stream ends, because their
windows depend on where it ends. The equality holds in every precision (bf16 autocast included): every forward pass
holds the same number of windows (:func:`~exprfusion.inference.window_logits.window_logits` fills up a short one),
so a window's logits do not depend on which windows share its pass.

Per-video normalisation (``normalisation="video"``) subtracts the whole video's mean, which a stream does not know
until it ends: such a model's stream releases nothing before :meth:`StreamingPredictor.close`, which labels the whole
video exactly as offline (:func:`holds_until_close`; the delay is then the whole stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from exprfusion.core.errors import InputError
from exprfusion.data.windows import WindowIndex
from exprfusion.inference.predict import check_feature_widths
from exprfusion.inference.voting import median_filter_labels, softmax
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE, VideoFrames, window_logits
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer


@dataclass(frozen=True)
class FinalLabels:
    """Labels that can no longer change: frames ``first .. first + len(labels) - 1`` (0-based)."""

    first: int
    labels: np.ndarray  # (k,) int64
    probabilities: np.ndarray  # (k, 8) float32, softmax of the voted logits (before the median filter)

    @property
    def frames(self) -> np.ndarray:
        """The 0-based frame numbers of ``labels``."""
        return np.arange(self.first, self.first + self.labels.size)


def delay_frames(inference: InferenceSettings) -> int:
    """The most frames by which the newest final label lags the newest frame: window + median_kernel // 2."""
    return inference.window + inference.median_kernel // 2


def holds_until_close(model: FusionTransformer) -> bool:
    """True for a model whose labels depend on the whole video (per-video normalisation): its stream releases every
    label at close."""
    return model.config.normalisation == "video"


class StreamingPredictor:
    """One video's stream: :meth:`append` chunks of frame features, get back the labels that became final.

    Args:
        model: a trained model (with per-video normalisation, every label comes at :meth:`close`).
        inference: window, stride and median kernel (from the artefact).
        batch_size: windows per forward pass; offline must use the same for equal labels (the default is offline's).
        precision: autocast of the forward passes (``auto``, ``fp32`` or ``bf16``), as offline's.
    """

    def __init__(
        self,
        model: FusionTransformer,
        inference: InferenceSettings,
        batch_size: int = INFERENCE_BATCH_SIZE,
        precision: str = "auto",
    ) -> None:
        self.model = model
        self.precision = precision
        self.whole_video = holds_until_close(model)
        self.inference = inference
        self.batch_size = batch_size
        self.received = 0  # frames appended so far
        self.closed = False
        self._buffer_first = 0  # frame number of the buffer's first row
        self._buffer: dict[str, np.ndarray] | None = None
        self._next_start = 0  # the next grid window to compute
        self._sums: list[np.ndarray] = []  # float64 [C] per frame whose vote is still open, from _vote_first
        self._counts: list[int] = []
        self._vote_first = 0  # first frame whose vote is still open
        self._voted_logits: list[np.ndarray] = []  # float32 [C] of frames whose vote is final
        self._voted_labels: list[int] = []
        self._released = 0  # frames whose final label was handed out

    @property
    def delay(self) -> int | None:
        """The most frames the newest final label lags the newest frame (see :func:`delay_frames`); None when every
        label waits for :meth:`close`."""
        return None if self.whole_video else delay_frames(self.inference)

    def append(
        self,
        visual: np.ndarray,
        audio: np.ndarray,
        face_mask: np.ndarray,
        audio_mask: np.ndarray,
    ) -> FinalLabels:
        """Add the next ``k >= 1`` frames' features (``visual [k, Dv]``, ``audio [k, Da]``, masks ``[k]``).

        Returns:
            The labels that became final (possibly none).
        """
        if self.closed:
            raise InputError("the stream is closed")
        chunk = VideoFrames.from_arrays(visual, audio, face_mask, audio_mask)
        check_feature_widths(self.model.config, int(chunk.visual.shape[1]), int(chunk.audio.shape[1]), "chunk")
        arrays = {
            "visual": chunk.visual.float().numpy(),
            "audio": chunk.audio.float().numpy(),
            "face_mask": chunk.face_mask.numpy(),
            "audio_mask": chunk.audio_mask.numpy(),
        }
        if self._buffer is None:
            self._buffer = arrays
        else:
            self._buffer = {key: np.concatenate([self._buffer[key], arrays[key]]) for key in arrays}
        self.received += chunk.n_frames
        if self.whole_video:  # each video's mean is known only at the end: every window waits for close
            return self._release(0, at_end=False)
        self._open_votes(self.received)
        window, stride = self.inference.window, self.inference.stride
        starts = np.arange(self._next_start, self.received - window + 1, stride, dtype=np.int64)
        self._add_windows(starts, self.received)
        if starts.size:
            self._next_start = int(starts[-1]) + stride
        self._settle_votes(max(self.received - window, 0))
        released = self._release(max(self.received - self.delay, 0), at_end=False)
        self._trim()
        return released

    def close(self) -> FinalLabels:
        """End the stream: the remaining frames' labels, with the end-aligned window, exactly as offline."""
        if self.closed:
            raise InputError("the stream is closed")
        self.closed = True
        if self.received == 0:
            return FinalLabels(0, np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
        n, window = self.received, self.inference.window
        last_start = max(n - window, 0)
        if n < window:
            starts = np.asarray([0])  # one window, padded past the end (offline does the same)
        elif last_start % self.inference.stride:
            starts = np.asarray([last_start])  # the end-aligned window, where the grid misses the end
        else:
            starts = np.zeros(0, np.int64)
        if self.whole_video and n >= window:  # no window has run yet: the grid's too, in start order
            starts = np.concatenate([np.arange(0, n - window + 1, self.inference.stride, dtype=np.int64), starts])
        self._open_votes(n)
        self._add_windows(starts, n)
        self._settle_votes(n)
        return self._release(n, at_end=True)

    def _open_votes(self, upto: int) -> None:
        """Open an empty vote for every new frame below ``upto``."""
        missing = upto - (self._vote_first + len(self._sums))
        self._sums.extend(np.zeros(0) for _ in range(missing))
        self._counts.extend([0] * missing)

    def _add_windows(self, starts: np.ndarray, n: int) -> None:
        """Run the model on the windows at ``starts`` over the ``n`` frames received, and add them to the votes."""
        if starts.size == 0:
            return
        window = self.inference.window
        frames = starts[:, None] + np.arange(window, dtype=np.int64)[None, :]
        valid = frames < n
        rows = np.minimum(frames, n - 1) - self._buffer_first
        index = WindowIndex(
            video=np.zeros(starts.size, np.int64),
            start=starts,
            rows=rows,
            valid=valid,
            lengths=np.asarray([self.received - self._buffer_first], np.int64),
            offsets=np.zeros(1, np.int64),
        )
        buffer = self._buffer
        assert buffer is not None
        streams = VideoFrames.from_arrays(buffer["visual"], buffer["audio"], buffer["face_mask"], buffer["audio_mask"])
        with torch.inference_mode():
            logits = window_logits(self.model, streams, index, self.batch_size, self.precision).astype(np.float64)
        # The offline vote sums every window of a frame in start order, in float64: done here in the same order.
        for number, start in enumerate(starts.tolist()):
            for position in np.flatnonzero(valid[number]).tolist():
                slot = start + position - self._vote_first
                total = self._sums[slot]
                self._sums[slot] = logits[number, position] if total.size == 0 else total + logits[number, position]
                self._counts[slot] += 1

    def _settle_votes(self, upto: int) -> None:
        """Close the votes of frames below ``upto``: mean logits and argmax, as
        :func:`~exprfusion.inference.voting.soft_vote`."""
        settled = upto - self._vote_first
        for slot in range(max(settled, 0)):
            mean = (self._sums[slot] / max(self._counts[slot], 1)).astype(np.float32)
            self._voted_logits.append(mean)
            self._voted_labels.append(int(np.argmax(mean)))
        if settled > 0:
            del self._sums[:settled], self._counts[:settled]
            self._vote_first = upto

    def _release(self, upto: int, at_end: bool) -> FinalLabels:
        """Median-filter and hand out the labels of frames ``_released .. upto - 1``."""
        first, half = self._released, self.inference.median_kernel // 2
        if upto <= first:
            return FinalLabels(first, np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
        # The filter of frame j reads votes j - half .. j + half; the votes are kept from _voted_first.
        segment_first = max(first - half, 0)
        segment_end = upto if at_end else upto + half
        votes = np.asarray(self._voted_labels[segment_first - self._voted_first : segment_end - self._voted_first])
        # Inside the segment a frame's kernel never reaches the padding, except at the true ends of the video,
        # where the padding repeats the edge label exactly as the offline filter does.
        filtered = median_filter_labels(votes, self.inference.median_kernel)[
            first - segment_first : upto - segment_first
        ]
        logits = np.stack(self._voted_logits[first - self._voted_first : upto - self._voted_first])
        self._released = upto
        return FinalLabels(first, filtered, softmax(logits).astype(np.float32))

    @property
    def _voted_first(self) -> int:
        """Frame number of the first kept vote."""
        return self._vote_first - len(self._voted_labels)

    def _trim(self) -> None:
        """Forget features no future window reads, and votes no future filter reads."""
        half = self.inference.median_kernel // 2
        keep_votes_from = max(self._released - half, 0)
        drop = keep_votes_from - self._voted_first
        if drop > 0:
            del self._voted_labels[:drop], self._voted_logits[:drop]
        # Future windows start at _next_start (grid) or at n - window >= received - window (the end window).
        keep_from = max(min(self._next_start, self.received - self.inference.window), 0)
        drop = keep_from - self._buffer_first
        if drop > 0 and self._buffer is not None:
            self._buffer = {key: value[drop:] for key, value in self._buffer.items()}
            self._buffer_first = keep_from
