"""Streaming latency: time per appended chunk and delay of final labels, for features arriving at 30 fps.

The model is ``models/model.pt`` when present, else a fresh model of the paper's size (``FusionConfig.paper()``,
``TrainConfig.paper().inference()``). A minute of random features (30 fps) is appended in chunks of 1, 10 and 30
frames; for each chunk size the script prints the median and 95th percentile of the time per
append over ``--repeats`` runs, the real-time factor (compute seconds per second of video: below 1 keeps up), and
the delay of the newest final label: ``window + median_kernel // 2`` frames of look-ahead, plus the wait for the
chunk to fill, plus the time to compute it. The reference, measured in the same run, is the offline pipeline
(:func:`exprfusion.inference.predict.predict_video`) over the same minute in one call.

    .venv/bin/python benchmarks/stream_latency.py [--seconds 60] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from exprfusion.inference.predict import predict_video
from exprfusion.inference.streaming import StreamingPredictor, delay_frames
from exprfusion.model.artifact import load_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.train_config import TrainConfig

FPS = 30.0
REPOSITORY = Path(__file__).resolve().parents[1]


def default_model() -> tuple[FusionTransformer, object, str]:
    """The repository's trained model, or a fresh one of the paper's size."""
    path = REPOSITORY / "models" / "model.pt"
    if path.is_file():
        model, inference, _ = load_model(path)
        return model, inference, str(path.relative_to(REPOSITORY))
    torch.manual_seed(0)
    return FusionTransformer(FusionConfig.paper()).eval(), TrainConfig.paper().inference(), "fresh FusionConfig.paper()"


def features(config: FusionConfig, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "visual": rng.normal(size=(n, config.visual_dim)).astype(np.float32),
        "audio": rng.normal(size=(n, config.audio_dim)).astype(np.float32),
        "face_mask": rng.random(n) > 0.05,
        "audio_mask": np.ones(n, bool),
    }


def stream_once(model, inference, video: dict[str, np.ndarray], chunk: int) -> tuple[list[float], int]:
    """Seconds per append, and the largest lag (frames) between the newest frame and the newest final label."""
    predictor = StreamingPredictor(model, inference)
    n = video["visual"].shape[0]
    times, final, lag = [], 0, 0
    for first in range(0, n, chunk):
        started = time.perf_counter()
        update = predictor.append(**{key: value[first : first + chunk] for key, value in video.items()})
        times.append(time.perf_counter() - started)
        final += update.labels.size
        lag = max(lag, min(first + chunk, n) - final)
    predictor.close()
    return times, lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, inference, source = default_model()
    n = int(args.seconds * FPS)
    video = features(model.config, n)
    print(f"model: {source}  d_model {model.config.d_model}  layers {model.config.n_layers}  {inference.to_dict()}")
    print(f"{n} frames ({args.seconds:g} s at {FPS:g} fps), {args.threads} threads, {args.repeats} repeats")

    offline = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        predict_video(model, inference, **video)
        offline.append(time.perf_counter() - started)
    offline_per_frame = statistics.median(offline) / n
    print(
        f"offline reference: {statistics.median(offline):.3f} s for the whole video "
        f"({1e3 * offline_per_frame:.3f} ms/frame)"
    )

    look_ahead = delay_frames(inference)
    print(f"look-ahead: window + median_kernel // 2 = {look_ahead} frames = {look_ahead / FPS:.3f} s at {FPS:g} fps")
    print("chunk  append median ms  p95 ms  per frame ms  vs offline  real-time factor  worst delay s  keeps up")
    for chunk in (1, 10, 30):
        per_append, lags = [], []
        for _ in range(args.repeats):
            times, lag = stream_once(model, inference, video, chunk)
            per_append.extend(times)
            lags.append(lag)
        median = statistics.median(per_append)
        p95 = float(np.percentile(per_append, 95))
        per_frame = sum(per_append) / (args.repeats * n)
        factor = per_frame * FPS  # compute seconds per second of video
        # worst delay: the label of the chunk's first frame waits for the chunk to fill, the look-ahead, the compute
        worst = (max(lags) + chunk - 1) / FPS + p95
        print(
            f"{chunk:5d}  {1e3 * median:16.2f}  {1e3 * p95:6.2f}  {1e3 * per_frame:12.3f}  "
            f"{per_frame / offline_per_frame:9.2f}x  {factor:16.3f}  {worst:13.3f}  {'yes' if factor < 1 else 'no'}"
        )


if __name__ == "__main__":
    main()
