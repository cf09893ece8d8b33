"""Quick probe of one training lever at `make repro` scale on 2 CPU cores (the ablation's rows are a GPU job).

Trains the model of the default search (d 128, l 1, p 0.1, auxiliary heads, face-only modality dropout, windows of
32, 4 epochs) with the given overrides: first the selection run on the 80 % side of the training holdout, then the
refit on the whole training split up to the epoch the holdout chose. It prints one JSON line: the holdout macro-F1
that selection saw, the chosen epoch, and for both models (``sel_``: the selection run's own, ``refit_``: the refit)
validation macro-F1 after voting and the median filter, and the same with every face hidden (``noface``). It also
reports logit adjustment by the train prior with ``tau`` chosen on the holdout (logits minus ``tau * log prior``,
the post-hoc adjustment of Menon et al., 2021): the holdout's scores per ``tau``, the refit model's validation scores
per ``tau``, and the chosen one. With linear experts, it also scores the refit at several expert weights
(``refit_joint_weights``: validation, at ``EXPERT_WEIGHTS["joint"]``; ``refit_audio_weights``: every face hidden).

    python benchmarks/lever_probe.py data/corpus reference
    python benchmarks/lever_probe.py data/corpus readout --model '{"window_readout": "both"}' --train '{"seed": 1}'
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from exprfusion.data.split_tensors import holdout_split, training_splits
from exprfusion.evaluation.metrics import macro_f1
from exprfusion.evaluation.scoring import score_split
from exprfusion.inference.voting import vote_and_filter
from exprfusion.inference.window_logits import window_logits
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.training.expert_fit import score_expert_weights
from exprfusion.training.train import refit_on_all, train_model
from exprfusion.training.train_config import TrainConfig

PROBE_MODEL = {"d_model": 128, "n_layers": 1, "modality_dropout": 0.1, "aux_loss_weight": 1.0, "visual_drop_share": 1.0}
PROBE_TRAIN = {"epochs": 4, "window": 32, "stride": 16, "eval_stride": 16}
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)
EXPERT_WEIGHTS = {"joint": (0.0, 1.0, 2.0, 4.0, 100.0), "audio": (0.0, 2.0, 4.0, 8.0, 16.0)}


def expert_weight_scores(model, validation, no_face, config: TrainConfig) -> dict[str, list[float]]:
    """The refit model's validation macro-F1 at each joint-expert weight, and with every face hidden at each
    audio-expert weight; empty without linear experts."""
    experts = model.linear_experts
    if experts is None:
        return {}
    data = {"joint": validation, "audio": no_face}
    return {
        f"refit_{name}_weights": list(
            score_expert_weights(model, name, data[name], EXPERT_WEIGHTS[name], config.inference()).values()
        )
        for name, weight in experts.weights.items()
        if weight > 0
    }


def adjusted_scores(model, data, config: TrainConfig, prior: np.ndarray) -> list[float]:
    """Macro-F1 on ``data`` after logit adjustment by ``prior`` at each of ``TAUS`` (voting + median filter)."""
    inference = config.inference()
    index = data.window_index(inference.window, inference.stride)
    logits = window_logits(model, data, index)
    truth = data.labels.numpy()
    return [
        round(
            macro_f1(
                truth, vote_and_filter(logits - tau * np.log(prior + 1e-9), index, inference.median_kernel).labels
            ),
            4,
        )
        for tau in TAUS
    ]


def probe(corpus: str, model_overrides: dict, train_overrides: dict) -> dict:
    """Train one configuration (selection run, then refit) and score both models on the validation split."""
    train, validation = training_splits(corpus)
    config = TrainConfig.from_dict({**PROBE_TRAIN, **train_overrides, "refit": False})
    started = time.perf_counter()
    model_config = FusionConfig.paper(**{**PROBE_MODEL, **model_overrides})
    result = train_model(None, model_config, config, splits=(train, validation))
    selected_at = time.perf_counter()
    refit = refit_on_all(result.model.config, config, train, result.best_epoch + 1, torch.device("cpu"))
    refit_at = time.perf_counter()
    no_face = validation.with_faces_masked(1.0, 0)
    scores = {"holdout": round(result.best_metrics["macro_f1"], 4), "best_epoch": result.best_epoch}
    for name, model in (("sel", result.model), ("refit", refit)):
        scores[f"{name}_val"] = round(score_split(model, validation, config.inference()).metrics["macro_f1"], 4)
        scores[f"{name}_noface"] = round(score_split(model, no_face, config.inference()).metrics["macro_f1"], 4)
    scores.update(expert_weight_scores(refit, validation, no_face, config))
    fitted, held = holdout_split(train, config.holdout_fraction)
    labels = fitted.labels.numpy()
    prior = np.bincount(labels[labels >= 0], minlength=8) / max(1, int((labels >= 0).sum()))
    scores["hold_taus"] = adjusted_scores(result.model, held, config, prior)
    scores["refit_val_taus"] = adjusted_scores(refit, validation, config, prior)
    chosen = int(np.argmax(scores["hold_taus"]))
    scores["tau_star"], scores["refit_val_tau_star"] = TAUS[chosen], scores["refit_val_taus"][chosen]
    scores["sec_sel"], scores["sec_refit"] = round(selected_at - started), round(refit_at - selected_at)
    return scores


def main() -> None:
    """Parse the arguments, run the probe, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("tag", help="a name for the printed line")
    parser.add_argument("--model", default="{}", help="FusionConfig overrides (JSON)")
    parser.add_argument("--train", default="{}", help="TrainConfig overrides (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_overrides, train_overrides = json.loads(args.model), json.loads(args.train)
    line = {"tag": args.tag, "corpus": args.corpus, "model": model_overrides, "train": train_overrides}
    print(json.dumps({**line, **probe(args.corpus, model_overrides, train_overrides)}), flush=True)


if __name__ == "__main__":
    main()
