"""Load on the prediction service: many concurrent clients sending a mix of good and bad requests over loopback.

Each client (an asyncio task sharing one httpx connection pool) sends requests back to back until the time is up,
drawing each from a fixed mix: good JSON, good JSON with one stream absent, a good ``.npz``, and bad requests (wrong
width, NaN, not JSON, a corrupt archive). Every payload is encoded once, before the clock starts. Printed: requests,
requests/s, p50/p95/p99 latency (overall and per kind), answers by status, transport errors, and whether the service
still answers afterwards. The run fails (exit status 1) on any transport error, any 5xx, or a service that no longer
answers.

    python benchmarks/serve_load.py                                  # serves models/model.pt in a temp BENTOML_HOME
    python benchmarks/serve_load.py --url http://127.0.0.1:3000 --clients 100 --duration 60 --frames 150
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from exprfusion.service.local_server import bentoml_serve

REPOSITORY = Path(__file__).resolve().parents[1]
# (kind, weight): half the requests are good, half bad.
MIX: tuple[tuple[str, int], ...] = (
    ("json", 3),
    ("json_audio_only", 1),
    ("npz", 4),
    ("bad_width", 2),
    ("bad_nan", 2),
    ("bad_not_json", 2),
    ("bad_npz", 2),
)


@contextlib.contextmanager
def local_service(model: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Package ``model``, build its Bento in ``workdir/bentoml`` and serve it on a free loopback port (its request
    log in ``workdir/logs``); yield the URL.

    The build runs in a child process, so this process never fixes BentoML's home; the server
    (:func:`exprfusion.service.local_server.bentoml_serve`) is stopped on exit.
    """
    env = {
        **os.environ,
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "EXPRFUSION_REQUEST_LOG": str(workdir / "logs" / "requests.jsonl"),  # not the checkout's logs/
        **(extra_env or {}),
    }
    build = (
        "import sys; from pathlib import Path; from exprfusion.tracking.packaging import package_model, build_bento; "
        "package_model(sys.argv[1], sys.argv[2], metrics={}, smoke_frames=64); "
        "print(build_bento(sys.argv[2], Path(sys.argv[3]) / 'serving' / 'bentofile.yaml', sys.argv[3]).bento_tag)"
    )
    done = subprocess.run(
        [sys.executable, "-c", build, str(model), str(workdir / "package"), str(REPOSITORY)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    tag = done.stdout.split()[-1]
    with bentoml_serve([tag], workdir / "server.log", env) as server:
        yield server.url


def model_widths(url: str) -> tuple[int, int]:
    """The served model's visual and audio feature widths (from ``GET /model``)."""
    model = httpx.get(f"{url}/model", timeout=30).json()["params"]["model"]
    return int(model["visual_dim"]), int(model["audio_dim"])


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """``np.savez`` of ``arrays`` into memory."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def payloads(frames: int, widths: tuple[int, int], seed: int = 0) -> dict[str, tuple[str, bytes, str, int]]:
    """Each kind's request, encoded once: ``(path, body, content type, expected status)``."""
    rng = np.random.default_rng(seed)
    visual = rng.standard_normal((frames, widths[0])).astype(np.float32)
    audio = rng.standard_normal((frames, widths[1])).astype(np.float32)
    face_mask = rng.random(frames) > 0.1
    good = {"visual": visual.tolist(), "audio": audio.tolist(), "face_mask": face_mask.tolist()}
    nan_body = json.dumps({**good, "audio": [[float("nan")] * widths[1], *good["audio"][1:]]})
    corrupt = bytearray(npz_bytes(visual=visual, audio=audio))
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = bytes(64)
    json_type, npz_type = "application/json", "application/octet-stream"
    return {
        "json": ("/predict", json.dumps(good).encode(), json_type, 200),
        "json_audio_only": ("/predict", json.dumps({"visual": None, "audio": good["audio"]}).encode(), json_type, 200),
        "npz": ("/predict_npz", npz_bytes(visual=visual, audio=audio, face_mask=face_mask), npz_type, 200),
        "bad_width": (
            "/predict",
            json.dumps({"visual": [row[:-1] for row in good["visual"]]}).encode(),
            json_type,
            422,
        ),
        "bad_nan": ("/predict", nan_body.encode(), json_type, 422),
        "bad_not_json": ("/predict", b"visual=1,2,3", json_type, 400),
        "bad_npz": ("/predict_npz", bytes(corrupt), npz_type, 400),
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` (linear interpolation); NaN when empty."""
    return float(np.percentile(values, q)) if values else float("nan")


async def _client(
    http: httpx.AsyncClient, requests: dict, rng: random.Random, deadline: float, results: list, errors: Counter
) -> None:
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        path, body, content_type, _ = requests[kind]
        started = time.perf_counter()
        try:
            response = await http.post(path, content=body, headers={"content-type": content_type})
        except httpx.HTTPError as error:
            errors[type(error).__name__] += 1
            continue
        results.append((kind, response.status_code, time.perf_counter() - started))


async def run_load(url: str, clients: int, duration: float, requests: dict, seed: int = 0) -> dict:
    """``clients`` concurrent clients for ``duration`` seconds; the measurements as a dict."""
    results: list[tuple[str, int, float]] = []
    errors: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(600.0), limits=limits) as http:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(
            *(
                _client(http, requests, random.Random(seed * 1000 + i), deadline, results, errors)
                for i in range(clients)
            )
        )
        elapsed = time.perf_counter() - started
    latencies = [latency for _, _, latency in results]
    by_kind: dict[str, list[float]] = defaultdict(list)
    unexpected = Counter()
    for kind, status, latency in results:
        by_kind[kind].append(latency)
        if status != requests[kind][3]:
            unexpected[f"{kind}:{status}"] += 1
    statuses = Counter(str(status) for _, status, _ in results)
    return {
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "requests": len(results),
        "requests_per_s": round(len(results) / elapsed, 2),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1),
        "by_kind": {
            kind: {"n": len(values), "p50_ms": round(1000 * statistics.median(values), 1)}
            for kind, values in sorted(by_kind.items())
        },
        "by_status": dict(sorted(statuses.items())),
        "unexpected_status": dict(unexpected),
        "transport_errors": sum(errors.values()),
        "transport_error_kinds": dict(errors),
        "server_errors": sum(count for status, count in statuses.items() if int(status) >= 500),
    }


def still_answers(url: str, requests: dict) -> bool:
    """The service is live and labels a good request after the load."""
    path, body, content_type, _ = requests["npz"]
    live = httpx.get(f"{url}/livez", timeout=30).status_code == 200
    return (
        live
        and httpx.post(f"{url}{path}", content=body, headers={"content-type": content_type}, timeout=120).is_success
    )


def main() -> None:
    """Parse the options, start the service unless ``--url`` is given, run the load and print the report."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the service on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service; default: serve --model in a temporary BENTOML_HOME")
    parser.add_argument("--model", type=Path, default=REPOSITORY / "models" / "model.pt")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--frames", type=int, default=150, help="frames per good request (150: 5 s at 30 fps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    options = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = options.url
        if url is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-load-")))
            url = stack.enter_context(local_service(options.model, workdir))
        requests = payloads(options.frames, model_widths(url), options.seed)
        report = asyncio.run(run_load(url, options.clients, options.duration, requests, options.seed))
        report["frames_per_good_request"] = options.frames
        report["answers_afterwards"] = still_answers(url, requests)
    print(json.dumps(report, indent=2))
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
    failed = report["transport_errors"] or report["server_errors"] or not report["answers_afterwards"]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
