"""Requests per second of the prediction service with 1 and with 2 prediction workers, under concurrent clients.

The model is ``make repro``'s (its settings, random weights: ``serve_latency.make_repro_model``); each request is
the one-minute float16 ``.npz`` of ``serve_latency.py``. For each worker count, a server is started with
``EXPRFUSION_WORKERS`` set (torch threads shared out among the workers: ``exprfusion.service.workers``), warmed up,
and ``--clients`` clients (one connection each, so the kernel spreads them over the workers) send ``--per-client``
requests back to back. Printed and appended to ``benchmarks/results/serve_workers.jsonl``: requests/s and latency
per worker count, and how many requests each prediction worker labelled (its drift-window frames at ``/metrics``).

    python benchmarks/serve_workers.py
    python benchmarks/serve_workers.py --workers 1 2 4 --clients 8 --per-client 6 --no-record
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from repro_seeds import commit_of, cpu_model
from serve_latency import FRAMES, make_repro_model, one_minute_video, summary
from serve_load import REPOSITORY, local_service, npz_bytes

RESULTS = REPOSITORY / "benchmarks" / "results" / "serve_workers.jsonl"
HEADERS = {"content-type": "application/octet-stream"}


async def load(url: str, body: bytes, clients: int, per_client: int) -> dict:
    """``clients`` clients, one connection each, sending ``per_client`` requests back to back."""
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:  # a connection of its own
            for _ in range(per_client):
                started = time.perf_counter()
                (await http.post("/predict_npz", content=body, headers=HEADERS)).raise_for_status()
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {**summary(latencies), "requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 2)}


def labelled_frames(url: str) -> dict[str, float]:
    """Frames in each live worker's drift window (``exprfusion_window_frames{pid}``), by pid."""
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    pattern = r'^exprfusion_window_frames\{pid="(\d+)"\} (\S+)$'
    return {pid: float(value) for pid, value in re.findall(pattern, metrics, re.MULTILINE)}


def measure(workers: int, body: bytes, clients: int, per_client: int, folder: Path) -> dict:
    """One server with ``workers`` prediction workers: warm-up, then the load."""
    model = make_repro_model(folder / "repro.pt")
    # A drift window of an hour: every frame a worker labels stays in its window, so the window counts its requests.
    settings = {"EXPRFUSION_WORKERS": str(workers), "EXPRFUSION_DRIFT_WINDOW": str(108_000)}
    with local_service(model, folder, settings) as url:
        asyncio.run(load(url, body, clients, 1))  # warm-up: every connection, so every worker, answers once
        warm = labelled_frames(url)
        result = asyncio.run(load(url, body, clients, per_client))
        after = labelled_frames(url)
    served = [round((frames - warm.get(pid, 0.0)) / FRAMES) for pid, frames in after.items() if frames]
    return {"workers": workers, **result, "requests_per_worker": sorted(served)}


def main() -> None:
    """Parse the options, measure each worker count, print the report and append it to the results file."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the service on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    options = parser.parse_args()
    video = one_minute_video()
    half = {**video, "visual": video["visual"].astype(np.float16), "audio": video["audio"].astype(np.float16)}
    body = npz_bytes(**half)
    runs = []
    for workers in options.workers:
        with tempfile.TemporaryDirectory(prefix="serve-workers-") as folder:
            runs.append(measure(workers, body, options.clients, options.per_client, Path(folder)))
        print(json.dumps(runs[-1]), flush=True)
    record = {
        "date": datetime.date.today().isoformat(),
        "commit": commit_of(REPOSITORY),
        "cpu": cpu_model(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "clients": options.clients,
        "per_client": options.per_client,
        "runs": runs,
    }
    print(json.dumps(record, indent=2))
    if not options.no_record:
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
