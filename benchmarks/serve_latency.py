"""Latency of the prediction service for a one-minute video, against the model's own time in the same run.

For each model (the one ``make repro`` registers, ``models/model.pt``, and the paper-size d = 256, l = 3 beside it,
randomly initialised: its cost does not depend on its weights), a one-minute video (1800 frames, 1024 + 1024 wide)
is labelled:

- in process: ``predict_video`` alone (the model's time), and decoding the ``.npz`` plus ``predict_video``;
- over HTTP, end to end (encoding done beforehand; sending, the server's decoding, checks, model and answer, and
  reading the answer): ``/predict_npz`` (float16 and float32 archives) and ``/predict`` (JSON), one request at a
  time and from 8 concurrent clients.

Printed: p50 and p95 per path, requests/s under concurrency, and the HTTP overhead over the model's time, two
ways: ``(p50 HTTP - p50 predict_video) / p50 predict_video`` against the in-process runs (interleaved with the HTTP
ones), and, per request, ``(HTTP - model) / model`` with the model's time the service reports for that very request
(its ``Server-Timing`` header), which a shared machine's changing load cannot skew. Then the case for adaptive
batching: 8 videos labelled one by one against one stacked pass over all 8 (what a batch of 8 requests could at
best do).

    python benchmarks/serve_latency.py                      # both models, fp32 or bf16 as the CPU computes natively
    python benchmarks/serve_latency.py --models repro --repeats 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import torch
from serve_load import REPOSITORY, local_service, npz_bytes, percentile

from exprfusion.core.devices import cpu_has_native_bf16
from exprfusion.data.windows import build_window_index
from exprfusion.inference.feature_arrays import read_video_npz_source
from exprfusion.inference.predict import predict_video
from exprfusion.inference.window_logits import VideoFrames, predict_frames
from exprfusion.model.artifact import InferenceSettings, load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

FRAMES = 1800  # one minute at 30 fps
WIDTHS = (1024, 1024)
REPRO_INFERENCE = InferenceSettings(window=32, stride=16, median_kernel=31)  # params.yaml's tune.train
SPECS = {"repro": (128, 2), "paper": (256, 3)}  # d_model, n_layers


def make_model(path: Path, d_model: int, n_layers: int) -> Path:
    """A randomly initialised model of the served widths and the pipeline's inference settings, saved at ``path``."""
    torch.manual_seed(0)
    config = FusionConfig.paper(visual_dim=WIDTHS[0], audio_dim=WIDTHS[1], d_model=d_model, n_layers=n_layers)
    return save_model(path, FusionTransformer(config).eval(), REPRO_INFERENCE, {"note": "random weights (benchmark)"})


def one_minute_video(seed: int = 0) -> dict[str, np.ndarray]:
    """1800 frames of 1024 + 1024 float32 features, 10 % of the faces missing."""
    rng = np.random.default_rng(seed)
    face_mask = rng.random(FRAMES) > 0.1
    visual = rng.standard_normal((FRAMES, WIDTHS[0])).astype(np.float32) * face_mask[:, None]
    audio = rng.standard_normal((FRAMES, WIDTHS[1])).astype(np.float32)
    return {"visual": visual, "audio": audio, "face_mask": face_mask, "audio_mask": np.ones(FRAMES, dtype=bool)}


def timed(function: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``function`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds."""
    return {"p50_ms": round(1000 * percentile(seconds, 50), 1), "p95_ms": round(1000 * percentile(seconds, 95), 1)}


async def concurrent(url: str, path: str, body: bytes, content_type: str, clients: int, per_client: int) -> dict:
    """``clients`` clients each sending ``per_client`` requests back to back: per-request latency and requests/s."""
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            response = await http.post(path, content=body, headers={"content-type": content_type})
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {**summary(latencies), "requests_per_s": round(len(latencies) / elapsed, 2)}


def batching_case(model_path: Path, videos: int, repeats: int) -> dict[str, float]:
    """Seconds to label ``videos`` one-minute videos one by one, and in one stacked pass (windows never cross)."""
    model, inference, _ = load_model(model_path)
    clips = [one_minute_video(seed) for seed in range(videos)]
    stacked = VideoFrames.from_arrays(*(np.concatenate([clip[name] for clip in clips]) for name in clips[0]))
    index = build_window_index([FRAMES] * videos, inference.window, inference.stride)

    def one_by_one() -> None:
        for clip in clips:
            predict_video(model, inference, **clip)

    def together() -> None:
        predict_frames(model, stacked, index, inference.median_kernel)

    one_by_one()
    together()
    rounds = [(timed(one_by_one, 1, warmup=0)[0], timed(together, 1, warmup=0)[0]) for _ in range(repeats)]
    apart, joined = (statistics.median(times) for times in zip(*rounds, strict=True))
    return {
        "one_by_one_s": round(apart, 3),
        "stacked_s": round(joined, 3),
        "stacked_over_one_by_one": round(joined / apart, 3),
    }


def server_timing(response: httpx.Response) -> dict[str, float]:
    """The service's ``Server-Timing`` header in seconds: ``{"checks": ..., "model": ...}``."""
    timings = {}
    for part in response.headers.get("server-timing", "").split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            timings[name] = float(duration) / 1000
    return timings


def measure(model_path: Path, repeats: int, clients: int) -> dict:
    """Every measurement of one model (module docstring).

    The in-process and the sequential HTTP timings are interleaved, one of each per round, so that both see the
    same load on a shared machine. Each HTTP answer also says how long the service's model took for it
    (``Server-Timing``), so the overhead is measured per request as well: (end to end - model) / model.
    """
    model, inference, _ = load_model(model_path)
    config = model.config
    video = one_minute_video()
    half = {**video, "visual": video["visual"].astype(np.float16), "audio": video["audio"].astype(np.float16)}
    bodies = {
        "npz_float16": ("/predict_npz", npz_bytes(**half), "application/octet-stream"),
        "npz_float32": ("/predict_npz", npz_bytes(**video), "application/octet-stream"),
        "json": (
            "/predict",
            json.dumps({name: array.tolist() for name, array in video.items()}).encode(),
            "application/json",
        ),
    }
    json_rounds = max(3, repeats // 3)  # a JSON request costs seconds: fewer rounds
    in_process: dict[str, list[float]] = {"predict_video": [], "npz_decode_and_predict": []}
    over_http: dict[str, list[tuple[float, float]]] = {kind: [] for kind in bodies}  # (end to end, server model)

    def predict_in_process() -> None:
        predict_video(model, inference, **video)

    def decode_and_predict() -> None:
        predict_video(model, inference, **read_video_npz_source(bodies["npz_float32"][1], "npz", config=config))

    with (
        tempfile.TemporaryDirectory(prefix="serve-latency-") as workdir,
        local_service(model_path, Path(workdir)) as url,
        httpx.Client(base_url=url, timeout=600) as http,
    ):

        def post(kind: str) -> tuple[float, float]:
            path, body, content_type = bodies[kind]
            started = time.perf_counter()
            response = http.post(path, content=body, headers={"content-type": content_type})
            response.raise_for_status()
            return time.perf_counter() - started, server_timing(response)["model"]

        predict_in_process()  # warm-up
        decode_and_predict()
        for kind in bodies:
            post(kind)
        for round_ in range(repeats):
            in_process["predict_video"] += timed(predict_in_process, 1, warmup=0)
            in_process["npz_decode_and_predict"] += timed(decode_and_predict, 1, warmup=0)
            for kind in bodies:
                if kind != "json" or round_ < json_rounds:
                    over_http[kind].append(post(kind))
        parallel = {
            kind: asyncio.run(concurrent(url, path, body, content_type, clients, 2 if kind == "json" else 3))
            for kind, (path, body, content_type) in bodies.items()
        }
    model_p50 = percentile(in_process["predict_video"], 50)
    result: dict = {
        "in_process": {name: summary(times) for name, times in in_process.items()},
        "body_mb": {kind: round(len(body) / 1e6, 1) for kind, (_, body, _) in bodies.items()},
    }
    for kind, samples in over_http.items():
        totals = [total for total, _ in samples]
        result[kind] = {
            "sequential": summary(totals),
            "server_model": summary([server for _, server in samples]),
            f"{clients}_clients": parallel[kind],
            "overhead_over_in_process_model": round((percentile(totals, 50) - model_p50) / model_p50, 3),
            "overhead_over_server_model": round(statistics.median((t - m) / m for t, m in samples), 3),
        }
    return result


def main() -> None:
    """Parse the options, measure each model, print one JSON report."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the service on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(SPECS), default=["repro", "paper"])
    parser.add_argument(
        "--repro-model",
        type=Path,
        default=REPOSITORY / "models" / "model.pt",
        help="the registered model (a random one of the same size when the file is absent)",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch-videos", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the report here")
    options = parser.parse_args()
    report: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "native_bf16": cpu_has_native_bf16(),
            "precision": "bf16 autocast" if cpu_has_native_bf16() else "fp32 (no native bf16 on this CPU)",
        }
    }
    with tempfile.TemporaryDirectory(prefix="serve-latency-models-") as folder:
        for name in options.models:
            d_model, n_layers = SPECS[name]
            path = options.repro_model if name == "repro" and options.repro_model.is_file() else None
            path = path or make_model(Path(folder) / f"{name}.pt", d_model, n_layers)
            config = load_model(path)[0].config
            report[name] = {
                "model": {"file": str(path), "d_model": config.d_model, "n_layers": config.n_layers},
                **measure(path, options.repeats, options.clients),
                "batching": batching_case(path, options.batch_videos, max(2, options.repeats // 5)),
            }
            print(json.dumps({name: report[name]}, indent=2), flush=True)
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
