"""What one shape for every inference pass costs: offline labelling of a clip and of a minute, and streaming.

Every forward pass at inference has one shape (512 frames through the per-frame stage, ``batch_size`` windows through
the rest; :func:`exprfusion.inference.window_logits.window_logits` fills a short pass up), so that streamed labels
equal offline ones bit for bit in every precision. The filling is computed and dropped. The reference, measured the
same way in the same run, is the same code with passes of the size the work happens to have
(``filled_pass`` replaced by the identity). The model is the pipeline's (``FusionConfig`` defaults, per-video
normalisation off) at BEiT-large and WavLM-large widths, with the pipeline's inference settings; ``precision: auto``
(bf16 on a CPU with AMX). One JSON line per case goes to ``benchmarks/results/pass_shape_cost.jsonl``.

    .venv/bin/python benchmarks/pass_shape_cost.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from repro_seeds import commit_of, cpu_model

from exprfusion.inference import window_logits as window_logits_module
from exprfusion.inference.predict import predict_video
from exprfusion.inference.streaming import StreamingPredictor
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.train_config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results" / "pass_shape_cost.jsonl"
FPS = 30


def features(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "visual": rng.normal(size=(n, 1024)).astype(np.float16),
        "audio": rng.normal(size=(n, 1024)).astype(np.float16),
        "face_mask": rng.random(n) > 0.05,
        "audio_mask": np.ones(n, bool),
    }


def offline_seconds(model, inference, video) -> float:
    started = time.perf_counter()
    predict_video(model, inference, **video)
    return time.perf_counter() - started


def stream_seconds(model, inference, video, chunk: int) -> float:
    predictor = StreamingPredictor(model, inference)
    started = time.perf_counter()
    for first in range(0, video["visual"].shape[0], chunk):
        predictor.append(**{key: value[first : first + chunk] for key, value in video.items()})
    predictor.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = FusionTransformer(FusionConfig(visual_dim=1024, audio_dim=1024, normalisation="robust")).eval()
    inference = TrainConfig().inference()
    cases = {
        "offline 10 s clip": (features(10 * FPS), None),
        "offline 1 min": (features(60 * FPS), None),
        "stream 30 s, chunks of 10": (features(30 * FPS), 10),
    }
    filled = window_logits_module.filled_pass
    lines = []
    for case, (video, chunk) in cases.items():
        timings: dict[str, list[float]] = {"one shape": [], "reference": []}
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits both alike
            for variant in timings:
                window_logits_module.filled_pass = filled if variant == "one shape" else (lambda ids, size: ids)
                run = (
                    stream_seconds(model, inference, video, chunk)
                    if chunk
                    else offline_seconds(model, inference, video)
                )
                timings[variant].append(run)
        window_logits_module.filled_pass = filled
        medians = {variant: statistics.median(values) for variant, values in timings.items()}
        line = {
            "case": case,
            "frames": int(video["visual"].shape[0]),
            "one_shape_s": round(medians["one shape"], 4),
            "reference_s": round(medians["reference"], 4),
            "ratio": round(medians["one shape"] / medians["reference"], 3),
            "repeats": args.repeats,
            "threads": args.threads,
            "inference": inference.to_dict(),
            "date": datetime.date.today().isoformat(),
            "commit": commit_of(REPOSITORY),
            "cpu": cpu_model(),
        }
        print(json.dumps(line))
        lines.append(line)
    with RESULTS.open("a") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
