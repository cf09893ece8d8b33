"""Feature standardisation lives inside the model: fitted on present training frames, saved, applied everywhere."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from factories import make_learnable_record

from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.inference.predict import predict_video
from exprfusion.inference.window_logits import centred_per_video, predict_split
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.model.standardiser import FeatureStandardiser
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.1)
TRAIN = TrainConfig(epochs=2, batch_size=8, window=16, eval_stride=4, median_kernel=3, lr=3e-3)
# A per-dimension affine map of the kind real features show: offsets ten times the spread, one massive dimension.
VISUAL_SCALE = np.array([2.0, 0.5, 1.0, 4.0, 1.0, 0.25, 30.0, 1.0])
VISUAL_OFFSET = np.array([10.0, -8.0, 5.0, 20.0, -6.0, 3.0, 100.0, 7.0])
AUDIO_SCALE = np.array([0.5, 2.0, 1.0, 3.0, 1.0, 0.5])
AUDIO_OFFSET = np.array([-10.0, -12.0, -6.0, -8.0, -14.0, -5.0])


def _records(transform: bool) -> list:
    records = []
    for name, split, seed in (("t0", "train", 0), ("t1", "train", 1), ("t2", "train", 2), ("v0", "validation", 9)):
        faces = np.ones(96, dtype=bool)
        faces[40:50] = False  # absent faces hold zeros, which must not enter the fitted statistics
        record = make_learnable_record(name, split, n=96, seed=seed, face_mask=faces)
        if transform:
            visual = record.visual.astype(np.float64) * VISUAL_SCALE + VISUAL_OFFSET
            visual[~faces] = 0.0
            audio = record.audio.astype(np.float64) * AUDIO_SCALE + AUDIO_OFFSET
            record = replace(record, visual=visual.astype(np.float32), audio=audio.astype(np.float32))
        records.append(record)
    return records


def _corpus(root, transform: bool):
    with CorpusWriter(root) as writer:
        for record in _records(transform):
            writer.add(record)
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("normalisation")
    return _corpus(folder / "plain", transform=False), _corpus(folder / "shifted", transform=True)


def test_standardiser_fits_present_rows_only_by_hand():
    standardiser = FeatureStandardiser(2)
    features = torch.tensor([[1.0, 10.0], [3.0, 10.0], [1e6, -1e6]])
    standardiser.fit(features, torch.tensor([True, True, False]))
    # Present rows: dim 0 holds 1 and 3 → mean 2, spread 1; dim 1 never varies → spread kept at 1.
    torch.testing.assert_close(standardiser.mean, torch.tensor([2.0, 10.0]))
    torch.testing.assert_close(standardiser.std, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(standardiser(torch.tensor([[4.0, 11.0]])), torch.tensor([[2.0, 1.0]]))


def test_statistics_survive_save_and_load(corpora, tmp_path):
    plain, _ = corpora
    model = train_model(plain, MODEL, replace(TRAIN, epochs=1)).model
    path = save_model(tmp_path / "model.pt", model, TRAIN.inference())
    loaded, _, _ = load_model(path)
    for name in ("visual_standardiser.mean", "visual_standardiser.std", "audio_standardiser.std"):
        torch.testing.assert_close(loaded.state_dict()[name], model.state_dict()[name])
    # Fitted, not the identity: the learnable visual rows are noise plus a planted 3 on one dimension per class.
    assert not torch.allclose(loaded.visual_standardiser.std, torch.ones(8))


def _labels_on_both(corpora, config: FusionConfig) -> list[np.ndarray]:
    return [
        predict_split(train_model(root, config, TRAIN).model, load_split(root, "validation"), TRAIN.inference()).labels
        for root in corpora
    ]


def test_shifted_and_scaled_features_give_the_same_labels(corpora):
    labels = _labels_on_both(corpora, MODEL)
    # Two models answering one class everywhere would agree trivially: each must tell several classes apart.
    assert all(len(np.unique(each)) >= 3 for each in labels), [np.unique(each) for each in labels]
    # float16 storage of the shifted features rounds them, so allow a few frames to flip.
    agreement = float(np.mean(labels[0] == labels[1]))
    assert agreement >= 0.97, f"only {agreement:.1%} of frames agree"
    # Control: without the fitted standardisation the same training on the two corpora disagrees.
    unnormalised = _labels_on_both(corpora, replace(MODEL, normalisation="none"))
    assert float(np.mean(unnormalised[0] == unnormalised[1])) < 0.9, "the affine map must matter without it"


def test_normalisation_none_keeps_the_identity_statistics(corpora):
    plain, shifted = corpora
    config = replace(MODEL, normalisation="none")
    outputs = [train_model(root, config, TRAIN).model.visual_standardiser.mean for root in (plain, shifted)]
    assert all(torch.equal(mean, torch.zeros(8)) for mean in outputs), "normalisation none keeps the identity"


def test_every_consumer_reads_the_fitted_statistics(corpora):
    plain, _ = corpora
    model = train_model(plain, MODEL, replace(TRAIN, epochs=1)).model
    validation = load_split(plain, "validation")
    rows = validation.video_rows(0)
    arrays = (validation.visual[rows], validation.audio[rows], validation.face_mask[rows], validation.audio_mask[rows])
    labels, _ = predict_video(model, TRAIN.inference(), *arrays)
    np.testing.assert_array_equal(labels, predict_split(model, validation, TRAIN.inference()).labels)
    # The same weights with the statistics reset to the identity predict something else: the statistics matter.
    identity = FusionTransformer(model.config)
    state = {k: v for k, v in model.state_dict().items() if "_standardiser." not in k}
    identity.load_state_dict(state, strict=False)
    changed, _ = predict_video(identity.eval(), TRAIN.inference(), *arrays)
    assert not np.array_equal(changed, labels)


def test_a_version_one_artefact_is_upgraded_to_the_identity(tmp_path):
    model = FusionTransformer(replace(MODEL, visual_dim=8, audio_dim=6, normalisation="none")).eval()
    state = {k: v for k, v in model.state_dict().items() if "_standardiser." not in k}
    config = {k: v for k, v in model.config.to_dict().items() if k != "normalisation"}
    payload = {
        "format": "exprfusion-model/1",
        "class_names": [],
        "model_config": config,
        "inference": TRAIN.inference().to_dict(),
        "metadata": {},
        "state_dict": state,
    }
    torch.save(payload, tmp_path / "old.pt")
    loaded, _, _ = load_model(tmp_path / "old.pt")
    visual = torch.randn(1, 16, 8)
    audio = torch.randn(1, 16, 6)
    masks = torch.ones(1, 16, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(loaded(visual, audio, masks, masks), model(visual, audio, masks, masks))


def test_video_normalisation_removes_each_video_s_offset(corpora):
    plain, _ = corpora
    validation = load_split(plain, "validation")
    shifted = replace(validation, visual=validation.visual.float() + 50.0 * validation.face_mask[:, None].float())
    visual, _ = centred_per_video(shifted, validation.lengths, validation.offsets)
    faces = validation.face_mask
    # Hand check: after centring, the present rows average to zero in every dimension, absent rows stay as they were.
    torch.testing.assert_close(visual[faces].mean(dim=0), torch.zeros(8), atol=1e-3, rtol=0)
    torch.testing.assert_close(visual[~faces], shifted.visual[~faces].float())
    config = replace(MODEL, normalisation="video")
    model = train_model(plain, config, replace(TRAIN, epochs=1)).model
    # A constant offset added to one video's faces changes nothing for a model that centres each video.
    before = predict_split(model, validation, TRAIN.inference()).labels
    after = predict_split(model, shifted, TRAIN.inference()).labels
    np.testing.assert_array_equal(before, after)


def test_robust_standardisation_uses_the_median_and_the_interquartile_range():
    # Dimension 0: a silence floor on half the rows plus a spread of speech values; dimension 1: constant quartiles
    # (three equal values in the middle), which keeps the ordinary spread.
    column = np.array([-14.0, -14.0, -14.0, -14.0, -7.0, -6.5, -6.0, -5.0], dtype=np.float32)
    flat = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0], dtype=np.float32)
    features = torch.from_numpy(np.stack([column, flat], axis=1))
    present = torch.ones(8, dtype=torch.bool)
    standardiser = FeatureStandardiser(2)
    standardiser.fit(features, present, robust=True)
    # By hand with numpy's (linear) percentiles.
    lower, median, upper = np.percentile(column, [25, 50, 75])
    assert standardiser.mean[0].item() == pytest.approx(median)
    assert standardiser.std[0].item() == pytest.approx((upper - lower) / 1.349, rel=1e-5)
    assert standardiser.mean[1].item() == pytest.approx(1.0)
    assert standardiser.std[1].item() == pytest.approx(flat.std(), rel=1e-5), "equal quartiles: the ordinary spread"


def test_a_robust_model_fits_robust_statistics():
    config = FusionConfig.paper(visual_dim=2, audio_dim=2, d_model=8, n_layers=1, n_heads=2, normalisation="robust")
    model = FusionTransformer(config)
    values = torch.tensor([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, 1000.0]])
    present = torch.ones(5, dtype=torch.bool)
    model.fit_standardisation(values, values, present, present)
    # The median of each column, not the mean that the outlying last row pulls up.
    torch.testing.assert_close(model.visual_standardiser.mean, torch.tensor([2.0, 20.0]))
    torch.testing.assert_close(model.audio_standardiser.mean, torch.tensor([2.0, 20.0]))
