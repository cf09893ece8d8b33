"""Audio lands on the right frame: in the decoded waveform, from model rows to frames, and in the model's rows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from extract.media_factories import write_video

from exprfusion.sources.extract.align import align_at_times
from exprfusion.sources.extract.audio import SpeechEncoder
from exprfusion.sources.extract.checkpoints import describe_checkpoint
from exprfusion.sources.extract.media import decode_media
from exprfusion.sources.extract.settings import AudioSettings

RATE = 16_000


@pytest.mark.parametrize(
    ("fps", "tone_at", "audio_delay"),
    [
        (Fraction(30), 1.2, 0.0),
        (Fraction(30), 31 / 30, 0.0),  # between two 50 Hz rows
        (Fraction(25), 0.92, 0.0),
        (Fraction(25), 1.2, 0.36),  # the audio stream starts 0.36 s after the first frame
        (Fraction(15, 2), 1.2, 0.0),
        (Fraction(15, 2), 0.8, 0.0),
    ],
)
def test_a_tone_in_the_decoded_waveform_starts_on_its_frame(tmp_path, fps, tone_at, audio_delay):
    n_frames = int(2 * fps)
    path = write_video(tmp_path / "tone.mp4", fps, n_frames, tone_at, audio_delay=audio_delay)
    media = decode_media(path, n_frames=n_frames, sample_rate=RATE)
    assert media.fps == float(fps)
    np.testing.assert_allclose(media.frame_times, np.arange(n_frames) / float(fps), atol=1e-6)
    onset = np.flatnonzero(np.abs(media.waveform) > 0.05)[0] / RATE
    assert abs(onset - tone_at) < 0.002, f"the tone starts at {onset:.4f} s in the 16 kHz waveform, not {tone_at}"
    shown = int(np.argmin(np.abs(media.frame_times - onset)))  # the frame shown closest to the onset
    assert shown == round(tone_at * float(fps))


def test_frames_past_the_last_packet_continue_at_the_frame_rate(tmp_path):
    path = write_video(tmp_path / "short.mp4", Fraction(25), 10, None)
    media = decode_media(path, n_frames=13)  # the annotation has three more lines than the video has frames
    np.testing.assert_allclose(media.frame_times, np.arange(13) / 25, atol=1e-6)


@pytest.mark.parametrize("method", ["nearest", "linear"])
@pytest.mark.parametrize("fps", [30.0, 25.0, 7.5])
def test_rows_from_second_t_on_land_on_frame_round_t_fps(fps, method):
    rows = np.zeros((151, 1), dtype=np.float32)  # 3 s at 50 rows/s, row j at j/50 s
    rows[60:] = 1.0  # a tone from second 1.2
    times = np.arange(int(3 * fps)) / fps
    aligned = align_at_times(rows, times, 50.0, method)
    assert np.flatnonzero(aligned[:, 0] > 0)[0] == round(1.2 * fps)


def test_nearest_and_linear_rows_by_hand():
    rows = (10.0 * np.arange(20, dtype=np.float32))[:, None]  # row j holds 10 j
    times = np.arange(5) / 30  # frames at 0, 1/30, 2/30, 3/30, 4/30 s -> rows 0, 1.67, 3.33, 5, 6.67
    assert align_at_times(rows, times, 50.0, "nearest")[:, 0].tolist() == [0, 20, 30, 50, 70]
    np.testing.assert_allclose(
        align_at_times(rows, times, 50.0, "linear")[:, 0], [0, 16.667, 33.333, 50, 66.667], atol=1e-3
    )
    late = align_at_times(rows, np.array([0.5]), 50.0, "nearest")  # row 25 does not exist: the last row
    assert late[0, 0] == 190


def test_row_j_of_the_speech_model_is_centred_on_sample_j_hop(tiny_models):
    """Moving an impulse from sample 320*7 to 320*12 changes the front end's rows 7 and 12 and no other."""
    model = str(tiny_models / "wavlm")
    encoder = SpeechEncoder(AudioSettings(model=model), describe_checkpoint(model, None), torch.device("cpu"), None)
    assert (encoder.receptive, encoder.hop, encoder.rate) == (400, 320, 50.0)
    n_rows = 20
    first, second = np.zeros(n_rows * 320, np.float32), np.zeros(n_rows * 320, np.float32)
    first[320 * 7], second[320 * 12] = 1.0, 1.0  # same mean and variance: the normalisation treats both alike

    def front_end(waveform: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(encoder.model_input(waveform, n_rows))[None]
        with torch.no_grad():
            return encoder.model.feature_extractor(inputs)[0].T.numpy()  # [rows, channels]

    a, b = front_end(first), front_end(second)
    assert a.shape[0] == n_rows
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 1e-6).tolist()
    assert changed == [7, 12]
