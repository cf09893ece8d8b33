"""The service's monitoring, end to end: a real two-worker ``bentoml serve``, its ``/metrics``, its request log, and
a real Prometheus scraping it with the shipped rules (durations shortened) until the alerts fire.

Expected values come from offline prediction of the same frames (``predict_video``), the masks the test built, and
:mod:`exprfusion.monitoring.drift`; the Jensen–Shannon distance from the counters is recomputed with the rule's own
formula.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.corpus import Corpus
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.monitoring.drift import drift_report
from exprfusion.monitoring.drift_report import read_request_log, write_drift_report

REPOSITORY = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _videos(corpus: Path) -> list[dict[str, np.ndarray]]:
    """Every corpus video, float32, with frames ``5i .. 5i+6`` of video ``i`` marked as having no face."""
    store = Corpus(corpus)
    videos = []
    for i, name in enumerate(["t0", "t1", "t2", "t3", "v0", "v1"]):
        record = store.load(name, mmap=False)
        face_mask = np.ones(len(record.face_mask), dtype=bool)
        face_mask[5 * i : 5 * i + 7] = False
        visual = np.asarray(record.visual, dtype=np.float32) * face_mask[:, None]
        audio = np.asarray(record.audio, dtype=np.float32)
        audio_mask = np.ones(len(audio), bool)
        videos.append({"visual": visual, "audio": audio, "face_mask": face_mask, "audio_mask": audio_mask})
    return videos


def _npz(video: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **video)
    return buffer.getvalue()


def _send(url: str, video: dict[str, np.ndarray], as_npz: bool) -> httpx.Response:
    """One request on its own connection (so the kernel may hand it to either worker)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        if as_npz:
            headers = {"content-type": "application/octet-stream"}
            return client.post("/predict_npz", content=_npz(video), headers=headers)
        return client.post("/predict", json={name: array.tolist() for name, array in video.items()})


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(key)[label]: value for (sample, key), value in samples.items() if sample == name}


def _js_from_shares(p: np.ndarray, q: np.ndarray) -> float:
    """The recording rule's formula: sqrt(1/2 Σ p log2(p/m) + 1/2 Σ q log2(q/m)), m = (p+q)/2, terms with 0 dropped."""
    m = (p + q) / 2
    half = [0.5 * sum(x * np.log2(x / mm) for x, mm in zip(a, m, strict=True) if x > 0) for a in (p, q)]
    return float(np.sqrt(max(half[0] + half[1], 0.0)))


def test_metrics_of_two_workers_equal_the_requests(served):
    model, inference, metadata = load_model(served.model_path)
    prior = np.asarray(metadata["prediction_prior"])
    videos = _videos(served.corpus) * 3  # 18 videos, sent 4 at a time, alternately as JSON and .npz
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: _send(served.url, videos[i], i % 2 == 1), range(len(videos))))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        bad = [
            client.post("/predict", json={"visual": [[0.0] * 7]}),  # 422: wrong width
            client.post("/predict", json={"audio": [[0.0] * 6], "visual": [[0.0] * 8] * 2}),  # 422: lengths
            client.post("/predict", content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"}),
            client.post("/predict_npz", content=b"no archive", headers={"content-type": "application/octet-stream"}),
            client.post(
                "/stream/no-such-session/append", content=b"", headers={"content-type": "application/octet-stream"}
            ),
        ]
    assert [r.status_code for r in bad] == [422, 422, 415, 400, 400], [r.text for r in bad]

    offline = [predict_video(model, inference, **video)[0] for video in videos]
    assert [answer.json()["labels"] for answer in answers] == [labels.tolist() for labels in offline]
    labels = np.concatenate(offline)
    faces = np.concatenate([video["face_mask"] for video in videos])
    expected_counts = np.bincount(labels, minlength=8)
    assert (expected_counts > 0).sum() >= 4, "the requests cover several classes: the per-class check is not vacuous"

    samples = _scrape(served.url)
    counted = _by_label(samples, "exprfusion_predicted_frames_total", "class_name")
    assert [counted[name] for name in CLASS_NAMES] == expected_counts.tolist()
    assert _value(samples, "exprfusion_missing_face_frames_total") == 3 * 7 * 6
    assert _value(samples, "exprfusion_missing_audio_frames_total") == 0
    assert _value(samples, "exprfusion_requests_total", endpoint="/predict") == 9 + 3
    assert _value(samples, "exprfusion_requests_total", endpoint="/predict_npz") == 9 + 1
    rejected = {
        (dict(key)["endpoint"], dict(key)["reason"]): value
        for (name, key), value in samples.items()
        if name == "exprfusion_rejected_requests_total" and value
    }
    append = "/stream/{session}/append"  # a route with a parameter counts under its template
    assert _value(samples, "exprfusion_requests_total", endpoint=append) == 1
    assert rejected == {
        ("/predict", "invalid"): 2,
        ("/predict", "media_type"): 1,
        ("/predict_npz", "unreadable"): 1,
        (append, "unreadable"): 1,
    }
    latency_count = sum(
        value for (name, _), value in samples.items() if name == "exprfusion_prediction_latency_seconds_count"
    )
    assert latency_count == len(videos)

    # Both workers labelled frames (one gauge series per live worker; the streaming worker's window is empty), and
    # their windows hold every frame once.
    window_frames = _by_label(samples, "exprfusion_window_frames", "pid")
    assert len([frames for frames in window_frames.values() if frames]) == 2, (
        f"one worker took every request: {window_frames}"
    )
    assert sum(window_frames.values()) == labels.size

    # Drift as Prometheus derives it from these series equals exprfusion.monitoring.drift offline for the same frames.
    reference = _by_label(samples, "exprfusion_reference_share", "class_name")
    reference = np.array([reference[name] for name in CLASS_NAMES])
    np.testing.assert_allclose(reference, prior, rtol=1e-12)
    offline_report = drift_report(labels, prior, face_mask=faces)
    shares = np.array([counted[name] for name in CLASS_NAMES]) / sum(counted.values())
    assert _js_from_shares(shares, reference) == pytest.approx(offline_report.js_distance, abs=1e-9)
    missing_face = _value(samples, "exprfusion_missing_face_frames_total") / sum(counted.values())
    assert missing_face == pytest.approx(offline_report.missing_face_rate)

    # The request log: one record per labelled request, per worker file; the same counts.
    deadline = time.monotonic() + 10
    while True:
        files = sorted(served.request_log.parent.glob("requests-*.jsonl"))
        records = read_request_log(files) if files else []
        if len(records) == len(videos) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(files) == 2 and len(records) == len(videos)
    assert np.sum([record["counts"] for record in records], axis=0).tolist() == expected_counts.tolist()
    assert sum(record["missing_face"] for record in records) == 3 * 7 * 6
    assert all(record["reference"] == pytest.approx(prior.tolist()) for record in records)
    report = write_drift_report([served.request_log.parent], served.request_log.parent / "report.html")
    assert report.read_text().count("data:image/png;base64,") == 3

    description = httpx.get(f"{served.url}/model", timeout=30).json()
    assert description["drift_reference"] == pytest.approx(prior.tolist())


def _test_rules(tmp_path: Path) -> tuple[Path, Path]:
    """The shipped rules with 15-second ranges and 2-second ``for:`` durations."""
    paths = []
    for name in ("rules.yml", "alerts.yml"):
        text = (REPOSITORY / "monitoring" / name).read_text()
        text = re.sub(r"\[\d+m\]", "[15s]", text)
        text = re.sub(r"for: \d+m", "for: 2s", text)
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    return paths[0], paths[1]


def _one_class_without_faces(corpus: Path, label: int) -> dict[str, np.ndarray]:
    """Frames of one class from the training videos, every face masked (zero visual rows): a drifted, occluded input."""
    store = Corpus(corpus)
    audio = []
    for name in ("t0", "t1", "t2", "t3"):
        record = store.load(name, mmap=False)
        audio.append(np.asarray(record.audio, dtype=np.float32)[np.asarray(record.labels) == label])
    audio = np.concatenate(audio)
    n = len(audio)
    return {"visual": np.zeros((n, 8), np.float32), "audio": audio, "face_mask": np.zeros(n, bool)}


def _alert_states(url: str) -> dict[str, str]:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {alert["labels"]["alertname"]: alert["state"] for alert in alerts}


def test_prometheus_alerts_fire_on_drifted_occluded_traffic_only(served, start_prometheus, prometheus_bin, tmp_path):
    rules = _test_rules(tmp_path)
    done = subprocess.run([str(prometheus_bin / "promtool"), "check", "rules", *map(str, rules)], capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    url = start_prometheus(served.url.removeprefix("http://"), list(rules))
    watched = ("ExprfusionPredictionDrift", "ExprfusionMissingFaces")

    normal = _videos(served.corpus)[4:]  # v0, v1: the validation videos, whose predicted shares are the prior
    for video in normal:
        video["face_mask"][:] = True
    started = time.monotonic()
    while time.monotonic() - started < 8:
        for video in normal:
            assert _send(served.url, video, as_npz=True).status_code == 200
    states = _alert_states(url)
    assert all(states.get(name, "inactive") == "inactive" for name in watched), states
    js = httpx.get(f"{url}/api/v1/query", params={"query": "exprfusion:prediction_js_distance:5m"}, timeout=10)
    assert float(js.json()["data"]["result"][0]["value"][1]) < 0.2

    drifted = _one_class_without_faces(served.corpus, label=3)
    deadline = time.monotonic() + 40
    while not all(_alert_states(url).get(name) == "firing" for name in watched):
        assert time.monotonic() < deadline, f"alerts did not fire: {_alert_states(url)}"
        assert _send(served.url, drifted, as_npz=True).status_code == 200
