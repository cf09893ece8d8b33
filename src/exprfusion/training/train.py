"""Training a model from a config: early stopping on voted macro-F1 (holdout or validation), checkpoints and
resume, the refit on the whole training split, and the result's validation scores.

The optimisation itself (AdamW, warm-up + cosine, clipping, the losses) is
:class:`exprfusion.training.training_run.TrainingRun`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from exprfusion.core.atomic import atomic_path
from exprfusion.core.devices import resolve_device
from exprfusion.core.errors import InputError
from exprfusion.core.seeding import seed_everything
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import SplitData, holdout_split, load_split
from exprfusion.evaluation.metrics import class_shares
from exprfusion.evaluation.scoring import score_split
from exprfusion.evaluation.uncertainty import macro_f1_interval
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.epoch_report import EpochReport
from exprfusion.training.normalisation_choice import AUTO, NormalisationChoice, choose_normalisation
from exprfusion.training.train_config import TrainConfig
from exprfusion.training.training_run import TrainingRun

__all__ = [
    "CHECKPOINT_NAME",
    "RESUMABLE_CHANGES",
    "TrainConfig",
    "TrainResult",
    "TrainingRun",
    "check_checkpoint_matches",
    "config_differences",
    "refit_on_all",
    "scored_result",
    "sized_config",
    "train_model",
    "training_metadata",
]

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainResult:
    """The outcome of a run: the best model (weights of the best epoch) and its history."""

    model: FusionTransformer
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[EpochReport] = field(default_factory=list)
    stopped_early: bool = False
    # True when the returned model was retrained on the whole training split after holdout selection (best_metrics
    # are then the selection run's scores on its holdout, which the refit model has trained on).
    refit: bool = False
    # The validation split's scores of the best model, measured once after training; with selection "validation"
    # they are the best epoch's own.
    validation_metrics: dict[str, Any] = field(default_factory=dict)
    # Share of the validation split's frames the model assigns to each class (labels unused): what drift monitoring
    # compares live predictions with.
    prediction_prior: list[float] = field(default_factory=list)
    # How ``normalisation: auto`` was decided (None: the normalisation was set, not chosen).
    normalisation_choice: NormalisationChoice | None = None


# Settings a resumed run may change: they move the run, not its results.
RESUMABLE_CHANGES: frozenset[str] = frozenset({"device", "eval_batch_size", "precision", "refit"})


def config_differences(
    saved: dict[str, Any],
    current: dict[str, Any],
    ignore: frozenset[str] = frozenset(),
    where: tuple[str, str] = ("there", "here"),
) -> list[str]:
    """``key=<saved> there, <current> here`` for each key whose values differ (``where`` names the two sides)."""
    keys = sorted((set(saved) | set(current)) - ignore)
    return [
        f"{key}={saved.get(key)!r} {where[0]}, {current.get(key)!r} {where[1]}"
        for key in keys
        if saved.get(key) != current.get(key)
    ]


def check_checkpoint_matches(
    path: Path, state: dict[str, Any], model_config: FusionConfig, config: TrainConfig, corpus_hash: str | None
) -> None:
    """Refuse to resume from a checkpoint written by another model config, training config or corpus.

    Raises:
        InputError: naming every difference, so the user can pick another run folder or delete the checkpoint.
    """
    problems = [f"model {d}" for d in config_differences(state.get("model_config") or {}, model_config.to_dict())]
    saved_train = state.get("train_config") or {}
    problems += [f"training {d}" for d in config_differences(saved_train, config.to_dict(), RESUMABLE_CHANGES)]
    saved_hash = state.get("corpus_hash")
    if corpus_hash is not None and saved_hash != corpus_hash:
        problems.append(f"corpus hash {str(saved_hash)[:12]} there, {corpus_hash[:12]} here")
    if problems:
        raise InputError(
            f"{path}: cannot resume, the checkpoint was written by another run ({'; '.join(problems)}); "
            "use another run folder or delete the checkpoint"
        )


def refit_on_all(
    model_config: FusionConfig,
    config: TrainConfig,
    train_data: SplitData,
    epochs: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> FusionTransformer:
    """Train a fresh model on the whole training split for the ``epochs`` that holdout selection chose.

    The seed, the schedule (over ``config.epochs``) and every setting are the selection run's; only the data grows
    by the holdout, and training stops after the chosen epoch instead of being scored. The validation split is
    never read. ``progress(done, epochs)`` is called after every epoch.
    """
    generator = seed_everything(config.seed)
    run = TrainingRun.start(model_config, config, train_data.to(device), device)
    for epoch in range(epochs):
        run.train_epoch(generator)
        if progress:
            progress(epoch + 1, epochs)
    run.model.eval()
    return run.model


def train_model(
    corpus: Corpus | str | Path,
    model_config: FusionConfig,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    callback: Callable[[EpochReport], None] | None = None,
    splits: tuple[SplitData, SplitData] | None = None,
    progress: Callable[[int, int], None] | None = None,
    score_validation: bool = True,
) -> TrainResult:
    """Train one model; checkpoint every epoch into ``run_dir`` and resume from its last checkpoint if present.

    Args:
        corpus: the corpus (train and validation splits are read from it unless ``splits`` is given).
        model_config: the model's hyper-parameters (feature dims are taken from the data).
        config: optimisation, windowing and post-processing settings.
        run_dir: where ``checkpoint.pt`` lives; None disables checkpointing.
        callback: called after every epoch with an :class:`EpochReport` (MLflow logging, Ray Tune reporting).
        splits: preloaded ``(train, validation)`` data, to share one load between runs.
        progress: optional ``callback(done, total)`` over epochs.
        score_validation: score the returned model on the validation split (False: a search's trial, which only
            selects; its ``validation_metrics`` stay empty).

    Returns:
        The best model (by macro-F1 after voting + median filtering on the selection split: a media-disjoint holdout
        of the training split, or the validation split with ``selection="validation"``), its history (each epoch's
        scores with ``macro_f1_ci``, the 95 % bootstrap interval over the selection split's videos), and the
        validation split's scores of that model. With holdout selection and ``config.refit`` the model returned is
        the refit on the whole training split up to the best epoch (:func:`refit_on_all`); the refit is not
        checkpointed, and a resumed run whose selection has finished refits again.
    """
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    if corpus is not None and not isinstance(corpus, Corpus):
        corpus = Corpus(corpus)
    corpus_hash = corpus.content_hash() if corpus is not None else None
    train_data, val_data = splits or (load_split(corpus, "train"), load_split(corpus, "validation"))
    whole_train = train_data
    if config.selection == "holdout":
        train_data, select_data = holdout_split(train_data, config.holdout_fraction)
    else:
        select_data = val_data
    choice = choose_normalisation(train_data, select_data) if model_config.normalisation == AUTO else None
    select_truth = select_data.labels.cpu().numpy()
    train_data, select_data = train_data.to(device), select_data.to(device)
    model_config = sized_config(model_config, config, train_data, choice.chosen if choice else None)
    run = TrainingRun.start(model_config, config, train_data, device)
    model = run.model

    history: list[EpochReport] = []
    best = {"epoch": -1, "metrics": {"macro_f1": -1.0}, "state": None}
    start_epoch = 0
    checkpoint_path = Path(run_dir) / CHECKPOINT_NAME if run_dir else None
    if checkpoint_path and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        check_checkpoint_matches(checkpoint_path, state, model_config, config, corpus_hash)
        run.load_state(state)
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        history = [EpochReport(**report) for report in state["history"]]
        best = state["best"]
        start_epoch = state["epoch"] + 1

    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if epoch - best["epoch"] > config.patience and best["epoch"] >= 0:
            stopped_early = True
            break
        started = time.perf_counter()
        train_loss = run.train_epoch(generator)
        scores = score_split(model, select_data, config.inference(), batch_size=config.eval_batch_size)
        interval = macro_f1_interval(select_truth, scores.prediction.labels, select_data.lengths, config.seed)
        metrics = {**scores.metrics, "macro_f1_ci": interval}
        report = EpochReport(
            epoch=epoch,
            train_loss=train_loss,
            lr=run.last_lr(),
            seconds=time.perf_counter() - started,
            metrics=metrics,
        )
        history.append(report)
        if metrics["macro_f1"] > best["metrics"]["macro_f1"]:
            state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best = {"epoch": epoch, "metrics": metrics, "state": state_dict}
        if checkpoint_path:
            checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "epoch": epoch,
                **run.state(),
                "generator": generator.get_state(),
                # nn.Dropout draws from the global RNG: save it too, so a resumed run continues identically.
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "history": [asdict(r) for r in history],
                "best": best,
                "model_config": model_config.to_dict(),
                "train_config": config.to_dict(),
                "corpus_hash": corpus_hash,
            }
            with atomic_path(checkpoint_path) as temporary:
                torch.save(state, temporary)
        if callback:
            callback(report)
        if progress:
            progress(epoch + 1, config.epochs)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    refit = config.selection == "holdout" and config.refit and best["epoch"] >= 0
    if refit:  # the holdout chose the epoch; the model to keep learns from every training video
        ran = len(history)  # the progress goes on counting epochs through the refit
        refit_progress = (lambda done, total: progress(ran + done, ran + total)) if progress else None
        model = refit_on_all(model_config, config, whole_train, best["epoch"] + 1, device, refit_progress)
    result = TrainResult(
        model=model,
        best_epoch=int(best["epoch"]),
        best_metrics=dict(best["metrics"]),
        history=history,
        stopped_early=stopped_early,
        refit=refit,
        normalisation_choice=choice,
    )
    return scored_result(result, config, val_data.to(device)) if score_validation else result


def sized_config(
    model_config: FusionConfig, config: TrainConfig, train_data: SplitData, normalisation: str | None = None
) -> FusionConfig:
    """``model_config`` with the feature widths of ``train_data``, a positional table covering ``config.window``,
    and ``normalisation`` in place of the configured one when given (how ``auto`` was resolved)."""
    return FusionConfig.from_dict(
        {
            **model_config.to_dict(),
            **({"normalisation": normalisation} if normalisation else {}),
            "visual_dim": int(train_data.visual.shape[1]),
            "audio_dim": int(train_data.audio.shape[1]),
            "max_len": max(model_config.max_len, config.window),
        }
    )


def scored_result(result: TrainResult, config: TrainConfig, validation: SplitData) -> TrainResult:
    """``result`` with its model's validation scores and predicted-class shares, measured once on ``validation``.

    The validation split is scored after the model is chosen (with selection "validation" the reported scores are
    the best epoch's own); its predicted-class distribution is the reference of drift monitoring.
    """
    scores = score_split(result.model, validation, config.inference(), batch_size=config.eval_batch_size)
    reported = scores.metrics
    if config.selection == "validation" and result.best_epoch >= 0:
        reported = dict(result.best_metrics)
    prior = class_shares(scores.prediction.labels, result.model.config.n_classes)
    return replace(result, validation_metrics=reported, prediction_prior=prior)


def training_metadata(result: TrainResult, train_config: TrainConfig, corpus: Corpus) -> dict[str, Any]:
    """What the model artefact records about its training run (the ``metadata`` of ``artifact.save_model``)."""
    return {
        "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics,
        "selection": train_config.selection,
        "validation_metrics": result.validation_metrics,
        "prediction_prior": result.prediction_prior,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "refit": result.refit,
        "normalisation_choice": asdict(result.normalisation_choice) if result.normalisation_choice else None,
        "train_config": train_config.to_dict(),
        "corpus": str(corpus.root),
        "corpus_hash": corpus.content_hash(),
        # Which features the model expects (the extractor's models, layers, pooling); None for synthetic or
        # imported features.
        "extractor": corpus.extractor,
    }
