"""Quick probe of one training lever at `make repro` scale on 2 CPU cores (the ablation's rows are a GPU job).

Trains the fusion model of the default search (d 128, l 2, p 0.1, 4 epochs, holdout selection, then the refit on the
whole training split) with the given overrides and prints one JSON line: the holdout macro-F1 that selection saw,
validation macro-F1 after voting and the median filter, the same with every face hidden, and the same after logit
adjustment by the train prior (``tau`` 0.5 and 1: logits minus ``tau * log prior``, the post-hoc adjustment of Menon
et al., 2021). ``--train '{"refit": false}'`` scores the selection run's own model, as the probes before the refit.

    python benchmarks/lever_probe.py data/corpus w=32 --train '{"window": 32}'
    python benchmarks/lever_probe.py data/corpus aux --model '{"aux_loss_weight": 1.0}' --train '{"seed": 1}'
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from exprfusion.data import holdout_split, training_splits
from exprfusion.inference import window_logits
from exprfusion.metrics import macro_f1
from exprfusion.model import FusionConfig
from exprfusion.train import TrainConfig, train_model
from exprfusion.voting import vote_and_filter

PROBE_MODEL = {"d_model": 128, "n_layers": 2, "modality_dropout": 0.1}
PROBE_TRAIN = {"epochs": 4, "window": 128}
TAUS = (0.0, 0.5, 1.0)


def probe(corpus: str, model_overrides: dict, train_overrides: dict) -> dict:
    """Train one configuration and score it on the validation split, with and without faces and adjustment."""
    train, validation = training_splits(corpus)
    config = TrainConfig.from_dict({**PROBE_TRAIN, **train_overrides})
    started = time.perf_counter()
    result = train_model(None, FusionConfig(**{**PROBE_MODEL, **model_overrides}), config, splits=(train, validation))
    fitted, _ = holdout_split(train, config.holdout_fraction)
    labels = fitted.labels.numpy()
    prior = np.bincount(labels[labels >= 0], minlength=8) / max(1, int((labels >= 0).sum()))
    inference = config.inference()
    scores = {"holdout": round(result.best_metrics["macro_f1"], 4), "best_epoch": result.best_epoch}
    for name, data in (("val", validation), ("no_face", validation.with_faces_masked(1.0, 0))):
        index = data.window_index(inference.window, inference.stride)
        logits = window_logits(result.model, data, index)
        for tau in TAUS:
            adjusted = logits - tau * np.log(prior + 1e-9)
            labels = vote_and_filter(adjusted, index, inference.median_kernel).labels
            scores[f"{name}_tau{tau}"] = round(macro_f1(data.labels.numpy(), labels), 4)
    scores["seconds"] = round(time.perf_counter() - started, 1)
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
    line = {"tag": args.tag, "model": model_overrides, "train": train_overrides}
    print(json.dumps({**line, **probe(args.corpus, model_overrides, train_overrides)}), flush=True)


if __name__ == "__main__":
    main()
