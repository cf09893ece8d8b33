"""The service over HTTP, against a real ``bentoml serve`` of the packaged Bento (see conftest.py).

One label per frame; the same labels as offline prediction for the same input; a 4xx whose message names the
problem for every kind of bad input, with the worker still alive; ``/model``, ``/metrics``, health and docs; a
bounded schemathesis run over the service's own OpenAPI schema; and (slow) a 10-second load run.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.corpus import Corpus
from exprfusion.inference.predict import predict_npz, predict_video
from exprfusion.model.artifact import load_model

REPOSITORY = Path(__file__).resolve().parents[2]
MAX_FRAMES = 108_000  # the service's default: one hour at 30 fps


@pytest.fixture(scope="module")
def client(served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def offline(served):
    """The packaged model loaded in this process: (model, inference settings, metadata)."""
    return load_model(served.model_path)


@pytest.fixture(scope="module")
def video(served) -> dict[str, np.ndarray]:
    """A validation video of the corpus (float16 features, as stored), with a few faces and audio frames missing."""
    record = Corpus(served.corpus).load("v0", mmap=False)
    face_mask = np.asarray(record.face_mask).copy()
    face_mask[10:20] = False
    audio_mask = np.asarray(record.audio_mask).copy()
    audio_mask[40:45] = False
    return {
        "visual": np.asarray(record.visual),
        "audio": np.asarray(record.audio),
        "face_mask": face_mask,
        "audio_mask": audio_mask,
    }


def as_json(video: dict[str, np.ndarray]) -> dict[str, list]:
    return {name: array.tolist() for name, array in video.items()}


def as_npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def post_npz(client: httpx.Client, body: bytes, query: str = "") -> httpx.Response:
    return client.post(f"/predict_npz{query}", content=body, headers={"content-type": "application/octet-stream"})


def test_a_good_request_gets_one_label_per_frame(client, served, video):
    n = len(video["visual"])
    response = client.post("/predict", json={**as_json(video), "fps": 25.0, "return_probabilities": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["labels"]) == n and all(0 <= label < 8 for label in body["labels"])
    assert body["classes"] == [CLASS_NAMES[label] for label in body["labels"]]
    probabilities = np.asarray(body["probabilities"])
    assert probabilities.shape == (n, 8)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    summary = body["summary"]
    counts = Counter(body["classes"])
    assert summary["frames_per_class"] == {name: counts.get(name, 0) for name in CLASS_NAMES}
    assert summary["n_frames"] == n and summary["duration_s"] == pytest.approx(n / 25.0)
    assert summary["missing_face_rate"] == pytest.approx(np.sum(~video["face_mask"]) / n)
    assert summary["missing_audio_rate"] == pytest.approx(5 / n)
    assert summary["model_version"] == f"{served.registration['name']}/{served.registration['version']}"
    assert re.fullmatch(r"checks;dur=\d+\.\d, model;dur=\d+\.\d", response.headers["server-timing"])


def test_labels_equal_offline_prediction(client, served, offline, video, tmp_path):
    """JSON and .npz requests label the video exactly as predict_video and `exprfusion predict`'s predict_npz do."""
    model, inference, _ = offline
    labels, probabilities = predict_video(model, inference, **video)
    assert len(set(labels.tolist())) > 1, "the model gives this video more than one class: the check is not vacuous"

    from_json = client.post("/predict", json={**as_json(video), "return_probabilities": True}).json()
    assert from_json["labels"] == labels.tolist()
    np.testing.assert_allclose(from_json["probabilities"], probabilities, rtol=0, atol=1e-6)

    features = as_npz(**video)
    from_npz = post_npz(client, features, "?return_probabilities=true").json()
    assert from_npz["labels"] == labels.tolist()
    np.testing.assert_allclose(from_npz["probabilities"], probabilities, rtol=0, atol=1e-6)

    (tmp_path / "video.npz").write_bytes(features)
    table = pd.read_csv(predict_npz(served.model_path, tmp_path / "video.npz", tmp_path / "labels.csv", device="cpu"))
    assert table["label"].tolist() == from_npz["labels"]


def test_one_stream_alone_is_labelled_as_the_model_labels_an_absent_stream(client, offline, video):
    """An absent stream means zeros with an all-False mask: the other branch answers alone."""
    model, inference, _ = offline
    n = len(video["audio"])
    absent = np.zeros(n, dtype=bool)
    audio_alone, _ = predict_video(
        model, inference, np.zeros((n, 8), np.float32), video["audio"], absent, absent | True
    )
    visual_alone, _ = predict_video(
        model, inference, video["visual"], np.zeros((n, 6), np.float32), video["face_mask"], absent
    )

    response = client.post("/predict", json={"visual": None, "audio": video["audio"].tolist()})
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == audio_alone.tolist()
    assert response.json()["summary"]["missing_face_rate"] == 1.0
    assert post_npz(client, as_npz(audio=video["audio"])).json()["labels"] == audio_alone.tolist()

    response = client.post(
        "/predict", json={"visual": video["visual"].tolist(), "face_mask": video["face_mask"].tolist()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == visual_alone.tolist()
    assert response.json()["summary"]["missing_audio_rate"] == 1.0


def _rows(n: int, width: int, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, width)).round(3).tolist()


def _raw(text: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post("/predict", content=text.encode(), headers={"content-type": "application/json"})


def _json(body: dict) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post("/predict", json=body)


def _npz(query: str = "", **arrays: np.ndarray) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: post_npz(client, as_npz(**arrays), query)


def _bytes(body: bytes, content_type: str = "application/octet-stream", path: str = "/predict_npz"):
    return lambda client: client.post(path, content=body, headers={"content-type": content_type})


def _corrupted() -> bytes:
    """A valid archive with bytes flipped inside the audio array's data (its CRC no longer matches)."""
    body = bytearray(as_npz(visual=np.ones((40, 8), np.float32), audio=np.ones((40, 6), np.float32)))
    start = body.find(b"audio.npy") + 200
    body[start : start + 16] = bytes(16)
    return bytes(body)


def _declared_bomb() -> bytes:
    """An archive whose member declares 100 000 x 100 000 floats (40 GB) and holds almost none of them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, archive.open("visual.npy", "w") as member:
        header = {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
        np.lib.format.write_array_header_1_0(member, header)
        member.write(bytes(64))
    return buffer.getvalue()


def _single_array() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((4, 8), np.float32))
    return buffer.getvalue()


def _chunked(size: int) -> Callable[[httpx.Client], httpx.Response]:
    def stream() -> Iterator[bytes]:
        for _ in range(size // 65536 + 1):
            yield bytes(65536)

    return lambda client: client.post(
        "/predict_npz", content=stream(), headers={"content-type": "application/octet-stream"}
    )


V, A = _rows(40, 8), _rows(40, 6, seed=1)
F32 = np.float32
ONES_V, ONES_A = np.ones((40, 8), F32), np.ones((40, 6), F32)
LONG_JSON = '{"audio": [' + ",".join(["[0.0,0.0,0.0,0.0,0.0,0.0]"] * (MAX_FRAMES + 1)) + "]}"

# case: (request, status, a regular expression the response body must match)
BAD_INPUT = {
    # JSON: /predict
    "wrong visual width": (_json({"visual": [row[:7] for row in V], "audio": A}), 422,
                           r"request: field 'visual' has 7 values per frame, the model expects 8"),
    "wrong audio width": (_json({"audio": [[*row, 0.0] for row in A]}), 422, r"field 'audio' has 7 values per frame"),
    "NaN": (_raw('{"audio": [[0,0,0,0,0,0],[0,0,0,0,0,0],[0,0,NaN,0,0,0]]}'), 422,
            r"field 'audio' holds NaN or infinite values \(first at frame 3\)"),
    "infinity": (_raw('{"visual": [[1e400,0,0,0,0,0,0,0]]}'), 422, r"field 'visual' holds NaN or infinite values"),
    "beyond float32": (_json({"visual": [[1e39] * 8]}), 422, r"field 'visual' holds values beyond the float32 range"),
    "zero frames": (_json({"visual": [], "audio": []}), 422, r"field 'visual' has no frames"),
    "too many frames": (_raw(LONG_JSON), 413,
                        rf"field 'audio' has {MAX_FRAMES + 1} frames, more than the {MAX_FRAMES} allowed"),
    "different lengths": (_json({"visual": V, "audio": A[:30]}), 422, r"field 'audio' has 30 frames, 'visual' has 40"),
    "both absent": (_json({"visual": None, "audio": None}), 422, r"neither field 'visual' nor field 'audio' is given"),
    "nothing at all": (_json({}), 422, r"neither field 'visual' nor field 'audio' is given"),
    "short mask": (_json({"visual": V, "face_mask": [True] * 39}), 422,
                   r"field 'face_mask' must have shape \(40,\) like 'visual', got \(39,\)"),
    "integer mask": (_json({"visual": V, "audio_mask": [1] * 40}), 400,
                     r'"loc":\["audio_mask",0\],"msg":"Input should be a valid boolean"'),
    "mask of an absent stream": (_json({"audio": A, "face_mask": [True] * 40}), 422,
                                 r"field 'face_mask' marks frames as present but field 'visual' is not given"),
    "text value": (_json({"visual": [[0.5, "x", 0, 0, 0, 0, 0, 0]]}), 400,
                   r'"loc":\["visual",0,1\],"msg":"Input should be a valid number'),
    "many text values": (_json({"visual": [["x"] * 8] * 5000}), 400,
                         r'^\{"error":"1 validation error for Input".*"loc":\["visual",0,0\]'),
    "ragged rows": (_json({"visual": [[0.0] * 8, [0.0] * 7]}), 422, r"field 'visual' must be a table with one row"),
    "negative fps": (_json({"audio": A, "fps": -1}), 400, r'"loc":\["fps"\]'),
    "not JSON": (_raw("visual=1,2,3"), 400, r"Invalid JSON"),
    "truncated JSON": (_raw('{"visual": [[0.1, 0.2'), 400, r"Invalid JSON"),
    "a form": (_bytes(b"visual=1", "application/x-www-form-urlencoded", "/predict"), 415,
               r"/predict reads application/json, not Content-Type 'application/x-www-form-urlencoded'"),
    "a pickle": (_bytes(b"\x80\x04K\x01.", "application/vnd.bentoml+pickle", "/predict"), 415,
                 r"not Content-Type 'application/vnd.bentoml\+pickle'"),
    "body over the limit": (_raw('{"audio": [' + "0" * 4_000_001 + "]}"), 413,
                            r"request body over the limit of 4000000 bytes for /predict \(EXPRFUSION_MAX_JSON_BYTES\)"),
    # .npz: /predict_npz
    "npz wrong width": (_npz(visual=np.ones((40, 9), F32), audio=ONES_A), 422,
                        r"request: array 'visual' has 9 values per frame, the model expects 8"),
    "npz NaN": (_npz(visual=np.where(np.arange(40)[:, None] == 6, np.nan, ONES_V), audio=ONES_A), 422,
                r"array 'visual' holds NaN or infinite values \(first at frame 7\)"),
    "npz integers": (_npz(visual=np.ones((40, 8), np.int64)), 422, r"array 'visual' must hold floats, got dtype int64"),
    "npz zero frames": (_npz(visual=np.ones((0, 8), F32), audio=np.ones((0, 6), F32)), 422,
                        r"array 'visual' has no frames"),
    "npz too many frames": (_npz(audio=np.zeros((MAX_FRAMES + 1, 6), np.float16)), 413,
                            rf"array 'audio' has {MAX_FRAMES + 1} frames, more than the {MAX_FRAMES} allowed"),
    "npz declares 40 GB": (_bytes(_declared_bomb()), 413, r"array 'visual' declares shape \(100000, 100000\)"),
    "npz different lengths": (_npz(visual=ONES_V, audio=ONES_A[:39]), 422,
                              r"array 'audio' has 39 frames, 'visual' has 40"),
    "npz both absent": (_npz(face_mask=np.ones(40, bool)), 422, r"neither array 'visual' nor array 'audio' is given"),
    "npz short mask": (_npz(visual=ONES_V, audio_mask=np.ones(41, bool)), 422,
                       r"array 'audio_mask' must have shape \(40,\) like 'visual', got \(41,\)"),
    "npz integer mask": (_npz(audio=ONES_A, audio_mask=np.ones(40, np.int8)), 422,
                         r"array 'audio_mask' must be bool \(True = present\), got dtype int8"),
    "npz unknown array": (_npz(visual=ONES_V, faces=np.ones(40, bool)), 422, r"unexpected arrays \['faces'\]"),
    "npz pickled object": (_npz(visual=np.array([{"a": 1}] * 3, dtype=object)), 400,
                           r"array 'visual' cannot be read: it holds Python objects, which are never unpickled"),
    "npz corrupt": (_bytes(_corrupted()), 400, r"array 'audio' cannot be read \(Bad CRC-32"),
    "npz truncated": (_bytes(as_npz(visual=ONES_V, audio=ONES_A)[:900]), 400, r"request: not an \.npz archive"),
    "npz single array": (_bytes(_single_array()), 400, r"expected an \.npz archive of named arrays \(np\.savez\)"),
    "npz not an archive": (_bytes(b'{"visual": [[0.0]]}'), 400, r"request: not an \.npz archive"),
    "npz unknown option": (_npz("?probabilities=1", visual=ONES_V), 400, r"query: probabilities: Extra inputs"),
    "npz bad option": (_npz("?fps=fast", visual=ONES_V), 400, r"query: fps: Input should be a valid number"),
    "npz as a form upload": (lambda client: client.post("/predict_npz", files={"features": as_npz(visual=ONES_V)}),
                             415, r"reads application/octet-stream, not Content-Type 'multipart/form-data"),
    "npz over the limit": (_bytes(bytes(4_000_001)), 413,
                           r"over the limit of 4000000 bytes for /predict_npz \(EXPRFUSION_MAX_REQUEST_BYTES\)"),
    "npz over the limit, chunked": (_chunked(4_000_001), 413, r"request body over the limit of 4000000 bytes"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_a_4xx_naming_the_problem(client, case):
    send, status, message = BAD_INPUT[case]
    response = send(client)
    assert response.status_code == status, response.text[:500]
    assert re.search(message, response.text), response.text[:500]


def test_model_description(client, served, offline):
    _, inference, metadata = offline
    response = client.get("/model")
    assert response.status_code == 200, response.text
    described = response.json()
    registration = served.registration
    assert (described["name"], described["version"]) == (registration["name"], registration["version"])
    assert described["alias"] == "champion" and described["champion_decision"] == registration["decision"]
    assert described["validation_macro_f1"] == metadata["validation_metrics"]["macro_f1"]
    assert described["corpus_hash"] == Corpus(served.corpus).content_hash()
    assert described["git_commit"] == served.package_commit
    assert described["params"]["inference"] == {"window": 16, "stride": 4, "median_kernel": 5} == inference.to_dict()
    assert described["params"]["model"]["d_model"] == 16 and described["params"]["train"]["epochs"] == 2
    assert described["class_names"] == list(CLASS_NAMES)


def predict_requests_counted(client: httpx.Client, status: int) -> float:
    """``bentoml_service_request_total`` of ``/predict`` answered with ``status``, summed over its series."""
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    labels = rf'[^}}]*endpoint="/predict"[^}}]*http_response_code="{status}"[^}}]*'
    pattern = rf"^bentoml_service_request_total\{{{labels}\}} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, metrics.text, flags=re.MULTILINE))


def test_metrics_health_and_docs(client):
    """``/metrics`` counts this test's own requests by status, whatever ran before it."""
    before = {status: predict_requests_counted(client, status) for status in (200, 422)}
    assert client.post("/predict", json={"audio": A}).status_code == 200
    assert client.post("/predict", json={"audio": [[*row, 0.0] for row in A]}).status_code == 422
    deadline = time.monotonic() + 10  # the counter may be written just after the answer
    while True:
        after = {status: predict_requests_counted(client, status) for status in (200, 422)}
        if all(after[status] >= before[status] + 1 for status in after) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(after[status] >= before[status] + 1 for status in after), (before, after)
    assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 200
    assert client.get("/").status_code == 200
    paths = client.get("/docs.json").json()["paths"]
    assert {"/predict", "/predict_npz", "/model", "/metrics", "/livez", "/readyz"} <= set(paths)


# route: (method, its query options, its body's media type, the error statuses it answers), from what each reads
OPENAPI_ROUTES = {
    "/predict": ("post", set(), "application/json", {400, 413, 415, 422}),
    "/predict_npz": ("post", {"fps", "return_probabilities"}, "application/octet-stream", {400, 413, 415, 422}),
    "/predict_video": ("post", {"return_probabilities"}, "application/octet-stream", {400, 413, 415, 422}),
    "/stream/open": ("post", {"fps"}, None, {400, 413, 422, 429, 503}),
    "/stream/{session}/append": ("post", set(), "application/octet-stream", {400, 404, 413, 422, 503}),
    "/stream/{session}/close": ("post", set(), None, {404, 413, 503}),
    "/model": ("get", set(), None, set()),
}


def test_the_openapi_document_states_every_routes_body_options_and_statuses(client):
    spec = client.get("/docs.json").json()
    assert spec["info"]["title"] == "exprfusion" and "facial-expression labels" in spec["info"]["description"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    for route, (method, options, media_type, errors) in OPENAPI_ROUTES.items():
        operation = spec["paths"][route][method]
        assert operation["description"], route
        assert {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"} == options, route
        assert set(operation.get("requestBody", {}).get("content", {})) == ({media_type} if media_type else set())
        responses = operation["responses"]
        assert {int(status) for status in responses} == {200} | errors, route
        for status in errors:
            error = responses[str(status)]
            assert error["description"] and error["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, (route, status)
    fps = next(p for p in spec["paths"]["/predict_npz"]["post"]["parameters"] if p["name"] == "fps")
    assert fps["schema"] == {"type": "number", "minimum": 0.1, "maximum": 1000}
    links = spec["paths"]["/stream/open"]["post"]["responses"]["200"]["links"]
    assert links["append"]["parameters"] == {"session": "$response.body#/session"}


def test_fuzzing_the_openapi_schema_finds_no_server_error(served, client, tmp_path):
    """schemathesis generates requests from the service's own schema, sessions included (the links from
    ``/stream/open``); no answer may be a 5xx, every status and body must be the ones the document states, and no
    worker may die. Not checked: that every schema-valid request is accepted (widths and archives are beyond a schema).
    """
    workers = served.worker_pids()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"{served.url}/docs.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--max-examples", "60", "--seed", "20261130",
            "--generation-database", "none", "--request-timeout", "60", "--no-color",
            "--report", "ndjson", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its crash cache goes in the working directory
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + served.log_tail()
    statuses = Counter(
        event["status_code"]
        for line in next(tmp_path.glob("*.ndjson")).read_text().splitlines()
        for event in _responses(json.loads(line))
    )
    assert sum(statuses.values()) >= 100, statuses
    assert not [status for status in statuses if status >= 500], statuses
    assert served.worker_pids() == workers and client.get("/livez").status_code == 200


def _responses(event: object) -> Iterator[dict]:
    """Every recorded HTTP response (a dict with ``status_code``) anywhere in an ndjson event."""
    if isinstance(event, dict):
        if isinstance(event.get("status_code"), int) and "headers" in event:
            yield event
        for value in event.values():
            yield from _responses(value)
    elif isinstance(event, list):
        for value in event:
            yield from _responses(value)


@pytest.mark.slow
def test_ten_seconds_of_mixed_load(served, client, tmp_path):
    """benchmarks/serve_load.py for 10 s: 100 clients, good and bad requests; no transport error, no 5xx."""
    workers = served.worker_pids()
    report = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPOSITORY / "benchmarks" / "serve_load.py"), "--url", served.url,
         "--duration", "10", "--clients", "100", "--frames", "64", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(report.read_text())
    assert result["transport_errors"] == 0 and result["server_errors"] == 0, result
    assert result["requests"] > 50 and result["by_status"].get("200", 0) > 0 and result["by_status"].get("422", 0) > 0
    assert served.worker_pids() == workers
    assert client.post("/predict", json={"audio": A}).status_code == 200


def test_no_worker_died(served, client):
    """After bad input of every kind, sent here whatever ran before, the workers are those that started, and they
    answer."""
    for case, (send, status, _) in BAD_INPUT.items():
        assert send(client).status_code == status, case
    assert served.worker_pids() == served.initial_workers, served.log_tail()
    assert client.post("/predict", json={"visual": V, "audio": A}).status_code == 200
