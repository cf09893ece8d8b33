"""Hostile clients against a real ``bentoml serve`` of the packaged Bento (see conftest.py).

- Property-based (hypothesis, fixed seed, bounded examples): ``.npz`` and JSON bodies across dtypes, byte orders,
  shapes, masks and sizes on ``/predict``, ``/predict_npz`` and ``/stream/{session}/append`` never get a 5xx, and
  every 4xx is a JSON error naming a field.
- A probe of hostile requests (byte orders, lying headers, zip bombs, path-traversal member names, bad masks, bad
  queries, early-refused large bodies) sent through Python's ``urllib`` and raw sockets: no 5xx, no reset
  connection, and each the status it should get.
- A 413 or 415 before the body is read reaches ``urllib``, ``requests``, ``httpx`` and ``curl`` alike.
- After all of it, the server's log holds no traceback, no ERROR line, and nothing of the requests' content.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import requests
from hostile_requests import FIELDS, MARKER_TEXT, MARKER_VALUE, PROBE, TRAILING_BOMB, as_npz, json_bodies, npz_bodies
from hypothesis import HealthCheck, given, seed, settings

NAMES = (*FIELDS, "fps", "return_probabilities")
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MB = 1_000_000
REFUSED = {  # what each early refusal sends: (path, content type, size) and the answer's status and message
    "415, 1 MB": ("/predict_npz", "text/plain", MB, 415, "/predict_npz reads application/octet-stream"),
    "415, 10 MB": ("/predict", "application/x-www-form-urlencoded", 10 * MB, 415, "/predict reads application/json"),
    "413, 10 MB": ("/predict_npz", "application/octet-stream", 10 * MB, 413, "request body over the limit"),
}


@pytest.fixture(scope="module")
def client(served):
    with httpx.Client(base_url=served.url, timeout=120) as session:
        yield session


SEEN: Counter[tuple[str, int]] = Counter()  # (route, status) of the property tests' answers, for their control


def check_answer(response: httpx.Response, n_frames: int | None, names: tuple[str, ...]) -> None:
    """No 5xx; a 4xx is JSON ``{"error": ...}`` naming one of ``names``; a 200 labels every frame."""
    route = re.sub(r"/stream/[^/]+/", "/stream/{session}/", response.request.url.path)
    SEEN[route, response.status_code] += 1
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        answer = response.json()
        message = answer["error"] + json.dumps(answer.get("detail", ""))
        assert any(f"'{name}'" in message or f'"{name}"' in message or f"{name}:" in message for name in names), message
    else:
        assert response.status_code == 200, response.text[:500]
        labels = response.json()["labels"]
        assert n_frames is None or len(labels) == n_frames


@seed(20261204)
@PROPERTY
@given(body=npz_bodies())
def test_any_npz_body_gets_an_answer_or_a_4xx_naming_the_array(client, body):
    archive, n_frames, names = body
    response = client.post("/predict_npz", content=archive, headers={"content-type": "application/octet-stream"})
    check_answer(response, n_frames, (*NAMES, *names))


@seed(20261205)
@PROPERTY
@given(body=npz_bodies())
def test_any_npz_chunk_of_a_stream_gets_an_answer_or_a_4xx_naming_the_array(client, body):
    archive, _, names = body
    opened = client.post("/stream/open")
    assert opened.status_code == 200, opened.text
    session = opened.json()["session"]
    try:
        response = client.post(
            f"/stream/{session}/append", content=archive, headers={"content-type": "application/octet-stream"}
        )
        check_answer(response, None, (*NAMES, *names))
    finally:
        assert client.post(f"/stream/{session}/close").status_code == 200


@seed(20261206)
@PROPERTY
@given(body=json_bodies())
def test_any_json_body_gets_an_answer_or_a_4xx_naming_the_field(client, body):
    text, n_frames = body
    response = client.post("/predict", content=text.encode(), headers={"content-type": "application/json"})
    check_answer(response, n_frames, NAMES)


def test_the_generated_bodies_reach_both_answers_on_every_route():
    """Control: each property test above got labels for some bodies and refusals for others (not all one kind)."""
    if not SEEN:
        pytest.skip("runs after the property tests of this module")
    for route in ("/predict", "/predict_npz", "/stream/{session}/append"):
        statuses = {status for (seen, status), count in SEEN.items() if seen == route and count}
        assert 200 in statuses and any(400 <= status < 500 for status in statuses), (route, SEEN)


def send_with_urllib(url: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    """The status ``urllib`` reads (an HTTPError is an answer too); a reset connection raises."""
    request = urllib.request.Request(
        url + path, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        answer.read()
        return answer.code


def send_raw(url: str, head: bytes, body: bytes) -> int:
    """Send exactly ``head`` + ``body`` on a socket and read the status line of the first answer."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(head + body)
        answer = http.client.HTTPResponse(connection, method="POST")
        answer.begin()
        answer.read()
        return answer.status


@pytest.mark.parametrize("case", list(PROBE))
def test_the_hostile_probe_gets_no_5xx_and_no_reset(served, case):
    """Each case's request, through urllib or a raw socket: its expected status, never a 5xx or a reset."""
    request, expected = PROBE[case]
    try:
        status = request(served.url, send_with_urllib, send_raw)
    except (ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError) as error:
        pytest.fail(f"{case}: the connection failed instead of an answer: {error!r}")
    assert status < 500 and status == expected, f"{case}: {status}"


def test_the_probe_has_45_cases_of_each_kind():
    kinds = {case.split(":")[0] for case in PROBE}
    assert len(PROBE) >= 45
    assert {"byte order", "lying header", "zip bomb", "member name", "mask", "query", "large refused"} <= kinds


def _curl(url: str, path: str, body: bytes, content_type: str, tmp_path) -> int:
    upload = tmp_path / "body.bin"
    upload.write_bytes(body)
    done = subprocess.run(
        ["curl", "-s", "-o", str(tmp_path / "answer.json"), "-w", "%{http_code}", "-H", f"Content-Type: {content_type}",
         "--data-binary", f"@{upload}", url + path],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


CLIENTS: dict[str, Callable] = {
    "urllib": lambda url, path, body, kind, tmp: send_with_urllib(url, path, body, {"Content-Type": kind}),
    "requests": lambda url, path, body, kind, tmp: (
        requests.post(url + path, data=body, headers={"Content-Type": kind}, timeout=120).status_code
    ),
    "httpx": lambda url, path, body, kind, tmp: (
        httpx.post(url + path, content=body, headers={"Content-Type": kind}, timeout=120).status_code
    ),
    "curl": _curl,
}


@pytest.mark.parametrize("refusal", list(REFUSED))
@pytest.mark.parametrize("name", list(CLIENTS))
def test_an_early_refusal_reaches_every_client(served, name, refusal, tmp_path):
    if name == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    path, content_type, size, status, _ = REFUSED[refusal]
    assert CLIENTS[name](served.url, path, bytes(size), content_type, tmp_path) == status


def test_an_early_refusal_is_the_json_error(client):
    for path, content_type, size, status, message in REFUSED.values():
        response = client.post(path, content=bytes(size), headers={"content-type": content_type})
        assert response.status_code == status and message in response.json()["error"]
        assert client.post("/predict", json={"audio": [[0.0] * 6] * 20}).status_code == 200  # the connection lives


def test_the_log_holds_no_traceback_and_no_request_content(served, client):
    """After this module's hostile requests (run first, in file order): 4xx are WARNING one-liners at most."""
    marked = {"visual": [[MARKER_VALUE, MARKER_TEXT, 0, 0, 0, 0, 0, 0]], "audio_mask": [MARKER_TEXT]}
    assert client.post("/predict", json=marked).status_code == 400
    assert client.post("/predict", content=b"not json " + MARKER_TEXT.encode()).status_code in (400, 415)
    archive = as_npz(visual=np.full((3, 8), MARKER_VALUE, np.float32), faces=np.ones(3, bool))
    assert (
        client.post("/predict_npz", content=archive, headers={"content-type": "application/octet-stream"}).status_code
        == 422
    )
    log = served.log.read_text(errors="replace")
    assert (
        "answered 400: 1 validation error(s) at visual.0.1 (float_type)" in log or "answered 400: 2 validation" in log
    )
    assert "Traceback" not in log and "[ERROR]" not in log, served.log_tail()
    assert MARKER_TEXT not in log and str(MARKER_VALUE) not in log and "input_value" not in log


def test_the_probes_zip_bomb_expands_far_beyond_its_body():
    """Control for the probe's zip bomb: a small body whose one member inflates to half a gigabyte."""
    with zipfile.ZipFile(io.BytesIO(TRAILING_BOMB)) as opened:
        (member,) = opened.infolist()
        assert len(TRAILING_BOMB) < 2 * MB and member.file_size > 400 * MB
