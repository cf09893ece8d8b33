"""Choose a corpus's feature normalisation on its selection split: features as they come, or centred per video.

Whether subtracting each video's mean helps depends on the corpus. Where a face embedding is dominated by who the
person is (few subjects, expression a small deviation from each one's neutral face), centring removes identity and
lifts a linear read by 0.10 macro-F1 and more; where the features are clean and a video holds few expressions, it
removes expression and costs as much (README, "Normalisation chosen on the holdout"). ``normalisation: auto``
therefore lets the data decide, before any model is built: the in-project baseline (exprfusion.evaluation.baseline, both
streams) is fitted on the fitting side of the selection split under each candidate and scored on the selection side;
the better candidate wins, ties keeping the first. With holdout selection the validation split is never read.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from sklearn.exceptions import ConvergenceWarning

from exprfusion.data.split_tensors import SplitData, holdout_split
from exprfusion.evaluation.baseline import BaselineConfig, fit_baseline, sample_training_frames
from exprfusion.evaluation.metrics import macro_f1
from exprfusion.evaluation.uncertainty import VideoBootstrap
from exprfusion.inference.window_logits import centred_split
from exprfusion.training.selection_check import SplitSize, normalisation_warning

AUTO = "auto"
CANDIDATES: tuple[str, ...] = ("robust", "video")  # as they come (robustly standardised), or centred per video first
# A smaller, shorter fit than the reported baseline's: the candidates differ by 0.08 to 0.17 on the synthetic
# profiles, far more than the sample changes, and the choice runs before every search.
CHOICE_BASELINE = BaselineConfig(max_train_frames=8000, max_iter=100)


@dataclass(frozen=True)
class NormalisationChoice:
    """The normalisation chosen, and the baseline's macro-F1 on the selection split under each candidate.

    ``difference_ci`` is the paired 95 % bootstrap interval over the split's videos of the first candidate's score
    minus the second's; ``warning`` says when it contains 0 (:mod:`exprfusion.training.selection_check`).
    """

    chosen: str
    scores: dict[str, float]
    difference_ci: list[float] | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a console: the choice and the scores behind it."""
        shown = ", ".join(f"{name} {score:.4f}" for name, score in self.scores.items())
        return f"normalisation chosen on the selection split: {self.chosen} (baseline macro-F1: {shown})"


def choose_normalisation(
    fit: SplitData,
    select: SplitData,
    candidates: tuple[str, ...] = CANDIDATES,
    config: BaselineConfig = CHOICE_BASELINE,
    split_name: str = "holdout",
) -> NormalisationChoice:
    """Score each candidate normalisation by the baseline fitted on ``fit`` and scored on ``select``.

    A candidate ``video`` reads both splits centred per video; any other reads them as they come (the baseline
    standardises each stream itself). Scores are rounded to 4 decimals, so that a tie is a tie on every machine.
    """
    truth = select.labels.cpu().numpy()
    scores, labels = {}, {}
    for candidate in candidates:
        fitted, scored = (centred_split(fit), centred_split(select)) if candidate == "video" else (fit, select)
        with warnings.catch_warnings():  # max_iter bounds the cost on purpose: an unconverged fit still ranks
            warnings.simplefilter("ignore", ConvergenceWarning)
            baseline = fit_baseline(sample_training_frames(fitted, config), "both", config)
        labels[candidate] = baseline.predict(scored, config.smoothing)
        scores[candidate] = round(float(macro_f1(truth, labels[candidate])), 4)
    chosen = max(candidates, key=lambda name: (scores[name], -candidates.index(name)))
    if len(candidates) < 2:
        return NormalisationChoice(chosen=chosen, scores=scores)
    bootstrap = VideoBootstrap(truth, select.lengths)  # paired: both candidates scored on the same resamples
    first, second = (bootstrap.macro_f1(labels[name]) for name in candidates[:2])
    difference = [round(bound, 4) for bound in bootstrap.interval(first - second)]
    warning = normalisation_warning(scores, difference, SplitSize.of(split_name, select))
    return NormalisationChoice(chosen, scores, difference, [warning] if warning else [])


def resolve_normalisation(
    normalisation: str, selection: str, holdout_fraction: float, train: SplitData, validation: SplitData
) -> NormalisationChoice | None:
    """The choice for ``normalisation: auto`` (None for any other setting, which stands as it is).

    It is made on the split that selection uses: with ``selection="holdout"`` the media-disjoint holdout of the
    training split (the same one :func:`exprfusion.training.train.train_model` selects on, and decides on when handed
    ``auto``), with ``"validation"`` the validation split, fitted on the whole training split.
    """
    if normalisation != AUTO:
        return None
    if selection == "holdout":
        fit, select = holdout_split(train, holdout_fraction)
    else:
        fit, select = train, validation
    return choose_normalisation(fit, select, split_name=selection)
