"""Peak memory of the prediction worker for an hour-long ``/predict_npz`` request, against the size of its body.

The service runs the model ``make repro`` trains (its settings, random weights: the memory does not depend on them;
``serve_latency.make_repro_model``) with one prediction worker. The request is an hour at 30 fps (108 000 frames of
1024 + 1024 float16 features and both masks, about 442 MB as ``.npz``), sent once as a warm-up and then
``--repeats`` times, each once the worker's memory has settled after the previous one (its memory is what one
request costs, not two overlapping); while each request runs, the worker's resident memory is sampled every 10 ms.
Printed and appended to ``benchmarks/results/serve_memory.jsonl``: the worker's memory before the request, its
peak, the peak over the body (the goal: at most 4), the increase over the body, and the request's time.

    python benchmarks/serve_memory.py
    python benchmarks/serve_memory.py --frames 54000 --no-record
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from repro_seeds import commit_of, cpu_model
from serve_latency import WIDTHS, make_repro_model
from serve_load import REPOSITORY, local_service, npz_bytes

RESULTS = REPOSITORY / "benchmarks" / "results" / "serve_memory.jsonl"
GOAL = 4.0  # peak worker memory over the body


def hour_long_body(frames: int) -> bytes:
    """``frames`` frames of float16 features (10 % of faces missing) and both masks, as an ``.npz``."""
    rng = np.random.default_rng(0)
    face_mask = rng.random(frames) > 0.1
    visual = rng.standard_normal((frames, WIDTHS[0]), dtype=np.float32).astype(np.float16)
    visual[~face_mask] = 0
    audio = rng.standard_normal((frames, WIDTHS[1]), dtype=np.float32).astype(np.float16)
    return npz_bytes(visual=visual, audio=audio, face_mask=face_mask, audio_mask=np.ones(frames, dtype=bool))


def prediction_worker(url: str) -> psutil.Process:
    """The process that answers ``url`` (the one prediction worker of the server listening there)."""
    port = int(url.rsplit(":", 1)[1])
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "_bentoml_impl.worker.service" in command and "exprfusion-streams" not in command:
            parent = process.parent()
            if parent is not None and any(c.laddr.port == port for c in parent.net_connections(kind="tcp")):
                return process
    raise RuntimeError(f"no prediction worker found for {url}")


class PeakMemory(threading.Thread):
    """Samples a process's resident memory every ``seconds`` until stopped; :attr:`peak` is the highest seen."""

    def __init__(self, process: psutil.Process, seconds: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.process, self.seconds = process, seconds
        self.peak = process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.seconds)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def settled(worker: psutil.Process, seconds: float = 10.0) -> int:
    """The worker's resident memory once it stops falling (the previous request's memory given back), at most
    ``seconds`` later."""
    deadline = time.monotonic() + seconds
    rss = worker.memory_info().rss
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = worker.memory_info().rss
        if now >= rss - 1_000_000:
            return now
        rss = now
    return rss


def measure(body: bytes, repeats: int) -> dict:
    """Serve the model, send the body ``repeats + 1`` times (the first a warm-up), sample the worker's memory."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="serve-memory-") as folder:
        model = make_repro_model(Path(folder) / "repro.pt")
        limits = {"EXPRFUSION_MAX_REQUEST_BYTES": str(2 * len(body))}
        with local_service(model, Path(folder), limits) as url, httpx.Client(base_url=url, timeout=900) as http:
            worker = prediction_worker(url)
            for run in range(repeats + 1):
                before = settled(worker)
                sampler = PeakMemory(worker)
                sampler.start()
                started = time.perf_counter()
                answer = http.post("/predict_npz", content=body, headers={"content-type": "application/octet-stream"})
                seconds = time.perf_counter() - started
                peak = sampler.stop()
                answer.raise_for_status()
                if run:  # the first request is the warm-up
                    runs.append({"before_mb": before / 1e6, "peak_mb": peak / 1e6, "seconds": seconds})
    mb = len(body) / 1e6
    worst = max(runs, key=lambda run: run["peak_mb"])
    return {
        "body_mb": round(mb, 1),
        "worker_before_mb": round(worst["before_mb"], 1),
        "worker_peak_mb": round(worst["peak_mb"], 1),
        "peak_over_body": round(worst["peak_mb"] / mb, 2),
        "increase_over_body": round((worst["peak_mb"] - worst["before_mb"]) / mb, 2),
        "request_seconds": [round(run["seconds"], 2) for run in runs],
        "goal_peak_le_4x_body": worst["peak_mb"] / mb <= GOAL,
    }


def main() -> None:
    """Parse the options, measure, print the report and append it to the results file."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the service on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=108_000, help="frames of the video (108 000: an hour)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    options = parser.parse_args()
    body = hour_long_body(options.frames)
    record = {
        "date": datetime.date.today().isoformat(),
        "commit": commit_of(REPOSITORY),
        "cpu": cpu_model(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "frames": options.frames,
        **measure(body, options.repeats),
    }
    print(json.dumps(record, indent=2))
    if not options.no_record:
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
