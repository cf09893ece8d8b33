"""Latency and throughput of the prediction service for a one-minute video, against the same work in process.

The model is the one ``make repro`` trains (``FusionConfig()`` and ``TrainConfig()`` defaults: d 128, 2 layers,
linear experts, window 32, inference stride 16, median kernel 31; robust normalisation, the choice on the default
corpus), randomly initialised (its cost does not depend on its weights), or ``--model`` a trained file. The video
is 1800 frames (a minute at 30 fps) of 1024 + 1024 features, sent as a float16 ``.npz`` (the goal's path) and,
for comparison, a float32 one.

The in-process reference runs where BentoML runs a synchronous API: in a worker thread (on the main thread,
OpenMP's threads spin when other processes compete for the cores, and the figure swings by an order of magnitude).
Its rounds are interleaved with the HTTP ones, one of each per round, so both see the same load:

- ``predict_video`` (the model) and ``decode_and_predict`` (the ``.npz`` read and checked, then labelled);
- over HTTP, end to end (the body encoded beforehand): p50 and p95 per archive dtype; the HTTP overhead is
  ``(p50 HTTP - p50 in process) / p50 in process`` against each reference, and per request against the model time
  the service reports for that request (``Server-Timing``);
- throughput: ``--clients`` (30) concurrent clients against in-process requests back to back in the worker thread.

Goals: p50 <= 150 ms for the float16 archive; HTTP overhead <= 20 % over the same work in process
(``decode_and_predict``: what the service does with the body, so the overhead is what HTTP adds); throughput under
30 clients >= 90 % of the in-process one (``decode_and_predict`` back to back, before and after the load). One JSON
line per run goes to ``benchmarks/results/serve_latency.jsonl`` (date, commit, CPU, load average, the figures).

    python benchmarks/serve_latency.py                 # 15 rounds, 30 clients
    python benchmarks/serve_latency.py --repeats 30 --model models/model.pt --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from repro_seeds import commit_of, cpu_model
from serve_load import REPOSITORY, local_service, npz_bytes, percentile

from exprfusion.core.devices import cpu_has_native_bf16
from exprfusion.inference.feature_arrays import read_video_npz_source
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.train_config import TrainConfig

FRAMES = 1800  # one minute at 30 fps
WIDTHS = (1024, 1024)
RESULTS = REPOSITORY / "benchmarks" / "results" / "serve_latency.jsonl"
GOALS = {"p50_ms": 150.0, "overhead": 0.20, "throughput_ratio": 0.90}


def make_repro_model(path: Path) -> Path:
    """A randomly initialised model of ``make repro``'s settings and the served widths, saved at ``path``."""
    torch.manual_seed(0)
    config = FusionConfig(visual_dim=WIDTHS[0], audio_dim=WIDTHS[1], normalisation="robust")
    model = FusionTransformer(config).eval()
    return save_model(path, model, TrainConfig().inference(), {"note": "random weights (benchmark)"})


def one_minute_video(seed: int = 0) -> dict[str, np.ndarray]:
    """1800 frames of 1024 + 1024 float32 features, 10 % of the faces missing."""
    rng = np.random.default_rng(seed)
    face_mask = rng.random(FRAMES) > 0.1
    visual = rng.standard_normal((FRAMES, WIDTHS[0])).astype(np.float32) * face_mask[:, None]
    audio = rng.standard_normal((FRAMES, WIDTHS[1])).astype(np.float32)
    return {"visual": visual, "audio": audio, "face_mask": face_mask, "audio_mask": np.ones(FRAMES, dtype=bool)}


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds."""
    return {"p50_ms": round(1000 * percentile(seconds, 50), 1), "p95_ms": round(1000 * percentile(seconds, 95), 1)}


def server_timing(response: httpx.Response) -> dict[str, float]:
    """The service's ``Server-Timing`` header in seconds: ``{"checks": ..., "model": ...}``."""
    timings = {}
    for part in response.headers.get("server-timing", "").split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            timings[name] = float(duration) / 1000
    return timings


async def concurrent(url: str, body: bytes, clients: int, per_client: int) -> dict:
    """``clients`` clients each sending ``per_client`` ``/predict_npz`` requests back to back."""
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            response = await http.post(
                "/predict_npz", content=body, headers={"content-type": "application/octet-stream"}
            )
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {**summary(latencies), "requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 2)}


def measure(model_path: Path, repeats: int, clients: int, per_client: int) -> dict:
    """Every measurement (module docstring), against a service started for ``model_path``."""
    model, inference, _ = load_model(model_path)
    config = model.config
    video = one_minute_video()
    half = {**video, "visual": video["visual"].astype(np.float16), "audio": video["audio"].astype(np.float16)}
    bodies = {"npz_float16": npz_bytes(**half), "npz_float32": npz_bytes(**video)}
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-process")  # where BentoML runs a sync API

    def in_thread(function: Callable[[], object]) -> float:
        def timed() -> float:
            started = time.perf_counter()
            function()
            return time.perf_counter() - started

        return worker.submit(timed).result()

    def model_alone() -> None:
        predict_video(model, inference, **half)

    def decode_and_predict() -> None:
        arrays = read_video_npz_source(bodies["npz_float16"], "request", config=config, allow_missing_stream=True)
        predict_video(model, inference, **arrays)

    in_process: dict[str, list[float]] = {"predict_video": [], "decode_and_predict": []}
    over_http: dict[str, list[tuple[float, float]]] = {kind: [] for kind in bodies}  # (end to end, server model)
    with (
        tempfile.TemporaryDirectory(prefix="serve-latency-") as workdir,
        local_service(model_path, Path(workdir)) as url,
        httpx.Client(base_url=url, timeout=600) as http,
    ):

        def post(kind: str) -> tuple[float, float]:
            started = time.perf_counter()
            response = http.post(
                "/predict_npz", content=bodies[kind], headers={"content-type": "application/octet-stream"}
            )
            response.raise_for_status()
            return time.perf_counter() - started, server_timing(response)["model"]

        for _ in range(3):  # warm-up: the first calls allocate and pick kernels
            in_thread(model_alone), in_thread(decode_and_predict), [post(kind) for kind in bodies]
        for _ in range(repeats):
            in_process["predict_video"].append(in_thread(model_alone))
            in_process["decode_and_predict"].append(in_thread(decode_and_predict))
            for kind in bodies:
                over_http[kind].append(post(kind))
        requests = clients * per_client
        started = time.perf_counter()
        for _ in range(requests):  # the in-process throughput: the same requests back to back
            in_thread(decode_and_predict)
        in_process_rate = requests / (time.perf_counter() - started)
        under_load = asyncio.run(concurrent(url, bodies["npz_float16"], clients, per_client))
        started = time.perf_counter()
        for _ in range(requests):  # and again after, so that a change of load shows as a spread
            in_thread(decode_and_predict)
        in_process_rate_after = requests / (time.perf_counter() - started)
    worker.shutdown()
    references = {name: percentile(times, 50) for name, times in in_process.items()}
    result: dict = {
        "in_process_worker_thread": {name: summary(times) for name, times in in_process.items()},
        "body_mb": {kind: round(len(body) / 1e6, 2) for kind, body in bodies.items()},
    }
    for kind, samples in over_http.items():
        totals = [total for total, _ in samples]
        result[kind] = {
            **summary(totals),
            "server_model": summary([server for _, server in samples]),
            **{
                f"overhead_over_{name}": round((percentile(totals, 50) - reference) / reference, 3)
                for name, reference in references.items()
            },
            "overhead_over_server_model": round(statistics.median((t - m) / m for t, m in samples), 3),
        }
    mean_rate = (in_process_rate + in_process_rate_after) / 2
    result["throughput"] = {
        "clients": clients,
        "http": under_load,
        "in_process_requests_per_s": [round(in_process_rate, 2), round(in_process_rate_after, 2)],
        "ratio": round(under_load["requests_per_s"] / mean_rate, 3),
    }
    return result


def goals_met(result: dict) -> dict[str, bool]:
    """Each goal of the module docstring, met or not."""
    half = result["npz_float16"]
    return {
        "p50_le_150_ms": half["p50_ms"] <= GOALS["p50_ms"],
        "overhead_le_20_percent": half["overhead_over_decode_and_predict"] <= GOALS["overhead"],
        "throughput_ge_90_percent": result["throughput"]["ratio"] >= GOALS["throughput_ratio"],
    }


def main() -> None:
    """Parse the options, measure, print the report and append it to the results file."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the service on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained model file (default: make repro's settings, random)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--per-client", type=int, default=3, help="requests per client under concurrency")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-latency-model-") as folder:
        path = options.model or make_repro_model(Path(folder) / "repro.pt")
        config = load_model(path)[0].config
        started = time.perf_counter()
        result = measure(path, options.repeats, options.clients, options.per_client)
    record = {
        "date": datetime.date.today().isoformat(),
        "commit": commit_of(REPOSITORY),
        "cpu": cpu_model(),
        "torch_threads_in_process": torch.get_num_threads(),
        "precision": "bf16 autocast" if cpu_has_native_bf16() else "fp32",
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "model": {"file": str(options.model) if options.model else "make repro settings, random weights"}
        | {key: getattr(config, key) for key in ("d_model", "n_layers", "normalisation")},
        "repeats": options.repeats,
        **result,
        "goals_met": goals_met(result),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(record, indent=2))
    if not options.no_record:
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
