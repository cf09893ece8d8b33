"""Long audio in overlapping chunks: stitched rows equal one pass wherever the context covers the receptive field."""

from __future__ import annotations

import numpy as np
import torch
from extract.media_factories import ATTENTION_WINDOW

from exprfusion.sources.extract.audio import SpeechEncoder
from exprfusion.sources.extract.checkpoints import describe_checkpoint
from exprfusion.sources.extract.settings import AudioSettings

# The test WavLM's receptive field in rows: its positional convolution reaches 2 rows back, each of its 2 attention
# layers ATTENTION_WINDOW rows either way.
RECEPTIVE_ROWS = 2 + 2 * ATTENTION_WINDOW


def _encode(tiny_models, waveform, n_rows, **chunking) -> np.ndarray:
    model = str(tiny_models / "wavlm")
    settings = AudioSettings(model=model, **chunking)
    encoder = SpeechEncoder(settings, describe_checkpoint(model, None), torch.device("cpu"), None)
    return encoder.encode(waveform, n_rows).astype(np.float32)


def test_chunked_rows_equal_a_single_pass(tiny_models):
    waveform = np.random.default_rng(0).standard_normal(3 * 16_000).astype(np.float32)
    n_rows = 150
    single = _encode(tiny_models, waveform, n_rows, chunk_seconds=60.0)
    context = RECEPTIVE_ROWS / 50  # 0.12 s
    for chunk_seconds in (0.3, 0.5):  # 15-row chunks: 10 passes, batched three at a time; 25-row chunks: 6 passes
        chunked = _encode(
            tiny_models, waveform, n_rows, chunk_seconds=chunk_seconds, context_seconds=context, batch_size=3
        )
        # Equal up to one float16 step (the single pass and the chunks round different float32 sums).
        np.testing.assert_allclose(chunked, single, rtol=2e-3, atol=2e-4)
    seams = _encode(tiny_models, waveform, n_rows, chunk_seconds=0.3, context_seconds=0.0)
    assert np.abs(seams - single).max() > 0.05, "without context the seams show (the comparison can fail)"
