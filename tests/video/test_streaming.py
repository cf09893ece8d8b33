"""Streaming equals offline on every label it finalises, with the delay bound; the tail comes at close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exprfusion.core.devices import cpu_has_native_bf16
from exprfusion.inference import window_logits as window_logits_module
from exprfusion.inference.predict import predict_video
from exprfusion.inference.streaming import StreamingPredictor, delay_frames
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

# stride 3 does not divide 203 - 16, so the offline pipeline adds an end-aligned window the stream cannot foresee
INFERENCE = InferenceSettings(window=16, stride=3, median_kernel=5)
N_FRAMES = 203


@pytest.fixture(scope="module")
def model() -> FusionTransformer:
    torch.manual_seed(0)
    return FusionTransformer(FusionConfig.paper(visual_dim=12, audio_dim=6, d_model=16, n_layers=1, n_heads=2)).eval()


def random_video(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "visual": rng.normal(size=(n, 12)).astype(np.float32),
        "audio": rng.normal(size=(n, 6)).astype(np.float32),
        "face_mask": rng.random(n) > 0.2,
        "audio_mask": rng.random(n) > 0.1,
    }


def stream(model, video, chunk: int) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """Append ``video`` in chunks; the labels finalised before close, how many after each chunk, and the tail."""
    predictor = StreamingPredictor(model, INFERENCE)
    released, counts = [], []
    n = video["visual"].shape[0]
    for first in range(0, n, chunk):
        update = predictor.append(**{key: value[first : first + chunk] for key, value in video.items()})
        assert update.first == sum(map(len, released))  # labels come in frame order, none skipped
        released.append(update.labels)
        counts.append(sum(map(len, released)))
    return released, counts, predictor.close().labels


@pytest.mark.parametrize("chunk", [1, 7, 300])
def test_finalised_labels_equal_offline_within_the_delay_bound(model, chunk):
    video = random_video(N_FRAMES)
    offline, _ = predict_video(model, INFERENCE, **video)
    released, counts, tail = stream(model, video, chunk)
    before_close = np.concatenate(released)
    np.testing.assert_array_equal(before_close, offline[: before_close.size])
    np.testing.assert_array_equal(np.concatenate([before_close, tail]), offline)
    # after m frames, exactly the frames below m - (window + kernel // 2) = m - 18 are final
    received = np.minimum(np.arange(1, len(counts) + 1) * chunk, N_FRAMES)
    assert delay_frames(INFERENCE) == 18
    np.testing.assert_array_equal(counts, np.maximum(received - 18, 0))
    # the difference to offline is one of time: the last window + half kernel of frames only come at close
    assert tail.size == min(18, N_FRAMES)


def test_the_tail_needs_the_end_of_the_stream(model):
    """The last frames' labels depend on where the video ends, so they cannot be released before close."""
    long_video = random_video(N_FRAMES + 10, seed=1)
    cut = {key: value[:N_FRAMES] for key, value in long_video.items()}
    short_labels, short_probabilities = predict_video(model, INFERENCE, **cut)
    long_labels, long_probabilities = predict_video(model, INFERENCE, **long_video)
    final = N_FRAMES - delay_frames(INFERENCE)
    np.testing.assert_array_equal(short_labels[:final], long_labels[:final])  # what streaming releases agrees
    vote_final = N_FRAMES - INFERENCE.window  # votes below this agree exactly; those above depend on the end
    np.testing.assert_array_equal(short_probabilities[:vote_final], long_probabilities[:vote_final])
    changed = np.abs(short_probabilities - long_probabilities[:N_FRAMES]).max(axis=1) > 1e-6
    assert changed[vote_final:].any() and not changed[:vote_final].any()


@pytest.mark.parametrize("n", [5, 16])
def test_streams_shorter_than_a_window_are_labelled_at_close(model, n):
    video = random_video(n, seed=2)
    released, _, tail = stream(model, video, 4)
    assert sum(map(len, released)) == 0
    np.testing.assert_array_equal(tail, predict_video(model, INFERENCE, **video)[0])


@pytest.mark.parametrize("n", [20, 100, 203])
def test_a_per_video_normalised_model_labels_the_whole_stream_at_close_as_offline(n):
    """The video's mean is known only at its end: nothing is released before close, then exactly the offline labels."""
    torch.manual_seed(5)
    model = FusionTransformer(FusionConfig.paper(visual_dim=12, audio_dim=6, d_model=16, n_layers=1, n_heads=2,
                                           normalisation="video")).eval()  # fmt: skip
    video = random_video(n, seed=6)
    video["visual"] = video["visual"] + 4.0  # an offset that only the whole video's mean removes
    _, counts, tail = stream(model, video, 7)
    assert set(counts) == {0}
    assert StreamingPredictor(model, INFERENCE).delay is None
    np.testing.assert_array_equal(tail, predict_video(model, INFERENCE, **video)[0])


# Real feature widths (BEiT-large, WavLM-large) and the pipeline's window: at these shapes the bf16 kernels of a CPU
# with AMX round a window's products differently in a pass of 2 windows than in one of 64.
WIDE = {"visual_dim": 1024, "audio_dim": 1024}
WIDE_INFERENCE = InferenceSettings(window=32, stride=16, median_kernel=5)


@pytest.fixture(scope="module")
def wide_model() -> FusionTransformer:
    torch.manual_seed(3)
    return FusionTransformer(FusionConfig(**WIDE, d_model=128, n_heads=4, normalisation="robust")).eval()


def wide_video(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "visual": rng.normal(size=(n, 1024)).astype(np.float16),  # float16, as a corpus stores them
        "audio": rng.normal(size=(n, 1024)).astype(np.float16),
        "face_mask": rng.random(n) > 0.1,
        "audio_mask": np.ones(n, bool),
    }


bf16_cpu = pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")


def bf16_stream(model: FusionTransformer, video: dict[str, np.ndarray], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of ``video`` streamed in chunks with bf16 autocast; checks some came before close."""
    predictor = StreamingPredictor(model, WIDE_INFERENCE, precision="bf16")
    n = video["visual"].shape[0]
    updates = [
        predictor.append(**{key: value[first : first + chunk] for key, value in video.items()})
        for first in range(0, n, chunk)
    ]
    assert sum(update.labels.size for update in updates) > 0  # some labels were final before the end
    updates.append(predictor.close())
    return np.concatenate([u.labels for u in updates]), np.concatenate([u.probabilities for u in updates])


@bf16_cpu
@pytest.mark.parametrize("chunk", [1, 7, 8])
def test_streaming_equals_offline_with_bf16_forced_on(wide_model, chunk):
    video = wide_video(150)
    labels, probabilities = predict_video(wide_model, WIDE_INFERENCE, **video, precision="bf16")
    streamed_labels, streamed_probabilities = bf16_stream(wide_model, video, chunk)
    np.testing.assert_array_equal(streamed_labels, labels)
    np.testing.assert_array_equal(streamed_probabilities, probabilities)


@bf16_cpu
def test_without_one_pass_shape_bf16_streaming_drifts_from_offline(wide_model, monkeypatch):
    """Control: passes of the size the work happens to have (no filling up) make the streamed bf16 probabilities
    differ from offline, so the equality above depends on every pass having one shape."""
    monkeypatch.setattr(window_logits_module, "filled_pass", lambda ids, size: ids)
    video = wide_video(150)
    _, probabilities = predict_video(wide_model, WIDE_INFERENCE, **video, precision="bf16")
    differs = [not np.array_equal(bf16_stream(wide_model, video, chunk)[1], probabilities) for chunk in (1, 7)]
    assert any(differs)
