"""The one input check behind ``exprfusion predict`` and the service (exprfusion.inference.feature_arrays), without a
server."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from exprfusion.core.errors import InputError
from exprfusion.inference.feature_arrays import TooLargeInputError, check_video_arrays, read_video_npz_source
from exprfusion.inference.predict import read_video_npz
from exprfusion.model.fusion_config import FusionConfig

CONFIG = FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2)


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_an_absent_stream_is_zeros_of_the_model_width_with_an_all_false_mask():
    audio = np.arange(30, dtype=np.float32).reshape(5, 6)
    video = check_video_arrays(None, audio, config=CONFIG)
    assert video["visual"].shape == (5, 8) and not video["visual"].any()
    assert video["face_mask"].tolist() == [False] * 5 and video["audio_mask"].tolist() == [True] * 5
    assert video["audio"] is audio


def test_nested_lists_and_float64_become_float32_with_the_same_values():
    rows = [[0.5, -1.25, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0] * 8]
    video = check_video_arrays(rows, None, config=CONFIG)
    assert video["visual"].dtype == np.float32 and video["visual"].tolist() == rows
    assert video["face_mask"].tolist() == [True, False]  # the all-zero row has no face
    with pytest.raises(InputError, match=r"request: field 'visual' holds values beyond the float32 range"):
        check_video_arrays([[3.5e38] * 8], None, config=CONFIG)


def test_the_frame_limit_counts_the_frames():
    check_video_arrays(None, np.zeros((10, 6), np.float32), config=CONFIG, max_frames=10)
    with pytest.raises(TooLargeInputError, match=r"field 'audio' has 11 frames, more than the 10 allowed"):
        check_video_arrays(None, np.zeros((11, 6), np.float32), config=CONFIG, max_frames=10)
    with pytest.raises(TooLargeInputError, match=r"array 'audio' has 11 frames, more than the 10 allowed"):
        read_video_npz_source(npz(audio=np.zeros((11, 6), np.float32)), "v.npz", config=CONFIG, max_frames=10)


def test_the_command_line_reader_still_wants_both_streams_unless_told(tmp_path):
    path = tmp_path / "audio_only.npz"
    path.write_bytes(npz(audio=np.ones((4, 6), np.float32)))
    with pytest.raises(InputError, match=r"audio_only\.npz: array 'visual' is missing \(found \['audio'\]\)"):
        read_video_npz(path, CONFIG)
    video = read_video_npz(path, CONFIG, allow_missing_stream=True)
    assert video["visual"].shape == (4, 8) and not video["face_mask"].any()


def test_bytes_and_a_file_of_the_same_archive_give_the_same_arrays(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"visual": rng.standard_normal((7, 8)).astype(np.float16), "audio": rng.standard_normal((7, 6))}
    (tmp_path / "v.npz").write_bytes(npz(**arrays))
    from_file = read_video_npz(tmp_path / "v.npz", CONFIG)
    from_bytes = read_video_npz_source(npz(**arrays), "request", config=CONFIG)
    for name in from_file:
        np.testing.assert_array_equal(from_file[name], from_bytes[name])
        assert from_file[name].dtype == from_bytes[name].dtype


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_big_endian_arrays_are_read_in_native_byte_order_with_the_same_values(dtype):
    rng = np.random.default_rng(1)
    native = {"visual": rng.standard_normal((5, 8)), "audio": rng.standard_normal((5, 6))}
    swapped = {name: array.astype(dtype) for name, array in native.items()}
    assert not swapped["visual"].dtype.isnative  # control: the archive really holds big-endian arrays
    video = read_video_npz_source(npz(**swapped), "request", config=CONFIG)
    for name in ("visual", "audio"):
        assert video[name].dtype.isnative
        np.testing.assert_array_equal(video[name], native[name].astype(dtype).astype(video[name].dtype))
    from exprfusion.inference.window_logits import _as_tensor

    _as_tensor(video["visual"])  # torch.from_numpy refuses non-native byte order


def test_an_archive_of_many_unknown_members_is_refused_in_one_short_message():
    """20 000 empty members (a body of about 2 MB): the refusal names five and counts the rest."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(20_000):
            archive.writestr(f"m{index:05d}.npy", b"")
    with pytest.raises(InputError) as refused:
        read_video_npz_source(buffer.getvalue(), "request", config=CONFIG, max_frames=100, allow_missing_stream=True)
    message = str(refused.value)
    assert message.startswith(
        "request: unexpected arrays ['m00000', 'm00001', 'm00002', 'm00003', 'm00004'] and 19995 more"
    )
    assert len(message) < 200
