"""Aff-Wild2 media to a corpus through the real code: tiny saved models loaded by path, drawn faces, mp4 files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from extract.media_factories import draw_face
from PIL import Image
from typer.testing import CliRunner

from exprfusion.cli import app
from exprfusion.data import corpus_checks
from exprfusion.data.corpus import Corpus
from exprfusion.sources.extract.build import ExtractionFailed, extract_corpus
from exprfusion.sources.extract.checkpoints import folder_sha256
from exprfusion.sources.extract.media import decode_media
from exprfusion.sources.extract.settings import RunOptions


def _file_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_media_become_a_corpus_with_faces_audio_and_masks(tiny_tree, tmp_path):
    out = tmp_path / "corpus"
    report = extract_corpus(tiny_tree.sources, tiny_tree.settings(), out)
    assert report.corpus == out and report.failures == []
    corpus = Corpus(out)
    assert sorted(corpus.videos("train")) == ["pair_left", "pair_right", "v1"]
    assert sorted(corpus.videos("validation")) == ["quiet", "w"]
    for name, spec in tiny_tree.videos.items():
        record = corpus.load(name)
        assert record.visual.shape == (spec.n_frames, 32) and record.audio.shape == (spec.n_frames, 16)
        assert record.visual.dtype == np.float16 and record.audio.dtype == np.float16
        faces = np.array([frame not in spec.missing for frame in range(spec.n_frames)])
        np.testing.assert_array_equal(record.face_mask, faces)
        assert not record.visual[~faces].any(), f"{name}: frames without an image have zero rows"
        assert np.abs(record.visual[faces]).sum(axis=1).min() > 0
        assert record.audio_mask.all() == spec.audio and record.audio_mask.any() == spec.audio
        assert record.fps == spec.fps
    left, right = corpus.load("pair_left"), corpus.load("pair_right")
    assert left.media == right.media == "pair"
    np.testing.assert_array_equal(left.audio, right.audio)
    assert not corpus.load("quiet").audio.any()
    extractor = corpus.extractor
    assert extractor["visual"]["model"] == str(tiny_tree.visual_model)
    assert extractor["visual"]["sha256"] == folder_sha256(tiny_tree.visual_model)
    assert extractor["visual"]["pooling"] == "pooler" and extractor["visual"]["dtype"] == "float32"
    assert extractor["audio"]["model"] == str(tiny_tree.audio_model) and extractor["audio"]["layer"] is None
    assert extractor["audio"]["output_dtype"] == "float16" and extractor["align"] == "nearest"
    # The corpus checks of the validate stage.
    assert corpus_checks.validate_corpus(out, tmp_path / "validation.json")["ok"]


def test_face_features_equal_a_per_image_reference(tiny_tree, tmp_path):
    """Batched, worker-decoded features equal ``model(**processor(image)).pooler_output``, one image at a time."""
    from transformers import AutoImageProcessor, AutoModel

    extract_corpus(tiny_tree.sources, tiny_tree.settings(workers=2), tmp_path / "corpus")
    record = Corpus(tmp_path / "corpus").load("v1")
    processor = AutoImageProcessor.from_pretrained(tiny_tree.visual_model)
    model = AutoModel.from_pretrained(tiny_tree.visual_model).eval()
    for frame in np.flatnonzero(record.face_mask):
        image = Image.open(tiny_tree.sources.cropped_aligned / "v1" / f"{frame + 1:05d}.jpg").convert("RGB")
        with torch.no_grad():
            expected = model(**processor(images=image, return_tensors="pt")).pooler_output[0].numpy()
        np.testing.assert_allclose(record.visual[frame].astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_audio_features_equal_one_unchunked_pass_at_the_frames_times(tiny_tree, tmp_path):
    """The reference: the whole waveform, behind 200 zeros, in one pass; frame i takes row round(i * 50 / fps)."""
    from transformers import AutoFeatureExtractor, AutoModel

    extract_corpus(tiny_tree.sources, tiny_tree.settings(), tmp_path / "corpus")
    record = Corpus(tmp_path / "corpus").load("v1")
    n, fps = record.n_frames, 30.0
    waveform = decode_media(tiny_tree.sources.videos / "batch1" / "v1.mp4", n).waveform
    n_rows = round((n - 1) / fps * 50) + 1
    span = np.zeros((n_rows - 1) * 320 + 200, np.float32)
    span[: min(span.size, waveform.size)] = waveform[: span.size]
    values = AutoFeatureExtractor.from_pretrained(tiny_tree.audio_model)(span, sampling_rate=16_000)["input_values"]
    inputs = torch.from_numpy(np.concatenate([np.zeros(200, np.float32), np.asarray(values[0], np.float32)]))
    with torch.no_grad():
        rows = AutoModel.from_pretrained(tiny_tree.audio_model).eval()(inputs[None]).last_hidden_state[0].numpy()
    assert rows.shape[0] == n_rows
    expected = rows[[round(i * 50 / fps) for i in range(n)]]
    np.testing.assert_allclose(record.audio.astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_an_interrupted_run_resumes_and_a_rerun_skips_finished_videos(tiny_tree, tmp_path):
    out, calls = tmp_path / "corpus", []

    def interrupt_after_two_results(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:  # the first call reports the start; then one call per finished result
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_corpus(tiny_tree.sources, tiny_tree.settings(), out, progress=interrupt_after_two_results)
    assert not out.exists(), "no corpus before every video is done"
    cache = tmp_path / ".corpus.extract"
    kept = {path.name: path.stat().st_mtime_ns for path in cache.rglob("*.npz")}
    assert kept == {"pair_left.npz": kept["pair_left.npz"], "pair_right.npz": kept["pair_right.npz"]}

    resumed = extract_corpus(tiny_tree.sources, tiny_tree.settings(), out)
    assert {path.name: path.stat().st_mtime_ns for path in (cache / "faces").glob("pair_*.npz")} == kept
    again = extract_corpus(tiny_tree.sources, tiny_tree.settings(), out, RunOptions(overwrite=True))
    assert again.extracted == [] and sorted(again.reused) == sorted(resumed.extracted) == sorted(tiny_tree.videos)
    assert _file_hashes(out) == _file_hashes(tmp_path / "corpus")

    # A fresh run elsewhere (decoding in two worker processes) gives the same bytes as the resumed one.
    fresh = tmp_path / "fresh" / "corpus"
    extract_corpus(tiny_tree.sources, tiny_tree.settings(workers=2), fresh)
    assert _file_hashes(fresh) == _file_hashes(out)

    # One changed face image: only its video is extracted again, and only its row changes.
    before = Corpus(out).load("v1", mmap=False)
    draw_face(40).save(tiny_tree.sources.cropped_aligned / "v1" / "00002.jpg", quality=90)
    changed = extract_corpus(tiny_tree.sources, tiny_tree.settings(), out, RunOptions(overwrite=True))
    assert changed.extracted == ["v1"]
    after = Corpus(out).load("v1")
    differs = np.flatnonzero(np.abs(after.visual.astype(np.float32) - before.visual).sum(axis=1) > 0)
    assert differs.tolist() == [1]
    np.testing.assert_array_equal(after.audio, before.audio)


def test_undecodable_image_and_media_are_listed_and_the_rest_is_kept(tiny_tree, tmp_path):
    bad_image = tiny_tree.sources.cropped_aligned / "v1" / "00006.jpg"
    bad_image.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg after all")
    bad_media = tiny_tree.sources.videos / "batch1" / "pair.mp4"
    bad_media.write_bytes(bytes(4096))
    out = tmp_path / "corpus"
    with pytest.raises(ExtractionFailed) as failed:
        extract_corpus(tiny_tree.sources, tiny_tree.settings(), out)
    failures = failed.value.report.failures
    assert len(failures) == 2 and not out.exists()
    assert any(str(bad_image) in failure for failure in failures)
    assert any(str(bad_media) in failure and "pair_left, pair_right" in failure for failure in failures)

    report = extract_corpus(tiny_tree.sources, tiny_tree.settings(), out, RunOptions(allow_missing=True))
    assert sorted(report.reused) == ["quiet", "v1", "w"], "the first run's work was kept"
    assert len(report.failures) == 2
    corpus = Corpus(out)
    assert sorted(corpus.videos()) == ["quiet", "v1", "w"]
    v1 = corpus.load("v1")
    assert not v1.face_mask[5] and not v1.visual[5].any() and v1.face_mask[6]


def test_extract_command_exit_status_says_whether_inputs_were_missing(tiny_tree, tmp_path):
    (tiny_tree.sources.cropped_aligned / "w" / "00003.jpg").write_bytes(b"broken")
    sources = tiny_tree.sources
    arguments = [
        "extract",
        "--annotations", str(sources.annotations),
        "--cropped-aligned", str(sources.cropped_aligned),
        "--videos", str(sources.videos),
        "--out", str(tmp_path / "corpus"),
        "--visual-model", str(tiny_tree.visual_model),
        "--audio-model", str(tiny_tree.audio_model),
        "--audio-chunk-seconds", "0.2",
        "--workers", "0",
    ]  # fmt: skip
    runner = CliRunner()
    failed = runner.invoke(app, arguments)
    assert failed.exit_code == 2, failed.output
    assert "00003.jpg" in failed.output and not (tmp_path / "corpus").exists()
    passed = runner.invoke(app, [*arguments, "--allow-missing"])
    assert passed.exit_code == 0, passed.output
    assert "left out:" in passed.output and "reused 5" in passed.output
    assert Corpus(tmp_path / "corpus").load("w").face_mask.tolist() == [False, True, False, *[True] * 6]


def test_mean_pooling_and_layer_choice_follow_the_settings(tiny_tree):
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel

    from exprfusion.sources.extract.audio import SpeechEncoder
    from exprfusion.sources.extract.checkpoints import describe_checkpoint
    from exprfusion.sources.extract.settings import AudioSettings, VisualSettings
    from exprfusion.sources.extract.visual import FaceEncoder, FaceVideo

    cpu, visual_model = torch.device("cpu"), str(tiny_tree.visual_model)
    images = sorted((tiny_tree.sources.cropped_aligned / "v1").glob("*.jpg"))[:3]
    settings = VisualSettings(model=visual_model, pooling="mean", layer=1)
    encoder = FaceEncoder(settings, describe_checkpoint(visual_model, None), cpu, None)
    (features,) = encoder.encode_videos([FaceVideo("v1", [None, *images])])
    pixels = AutoImageProcessor.from_pretrained(visual_model)(
        images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt"
    )["pixel_values"]
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(visual_model)(pixel_values=pixels, output_hidden_states=True).hidden_states
    expected = hidden[1][:, 1:].mean(dim=1).numpy()  # the 16 patch tokens after the class token, after layer 1
    np.testing.assert_allclose(features.features[1:].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    assert features.face_mask.tolist() == [False, True, True, True] and not features.features[0].any()

    audio_model = str(tiny_tree.audio_model)
    speech = SpeechEncoder(AudioSettings(model=audio_model, layer=1), describe_checkpoint(audio_model, None), cpu, None)
    waveform = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    rows = speech.encode(waveform, 25)
    values = AutoFeatureExtractor.from_pretrained(audio_model)(waveform[: 24 * 320 + 200], sampling_rate=16_000)
    inputs = torch.from_numpy(np.concatenate([np.zeros(200, np.float32), values["input_values"][0]]))[None]
    with torch.no_grad():
        expected = AutoModel.from_pretrained(audio_model)(inputs, output_hidden_states=True).hidden_states[1][0]
    np.testing.assert_allclose(rows.astype(np.float32), expected.numpy(), rtol=2e-3, atol=2e-3)
