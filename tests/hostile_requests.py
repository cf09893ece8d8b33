"""Hostile requests for the serving tests: hypothesis strategies of ``.npz`` and JSON bodies, and the probe's cases.

The widths are those of the served test model (``tests/serving/conftest.py``: 8 visual, 6 audio values per frame)
and the body limit its server's (4 MB). A probe case is ``(send, expected status)``; ``send(url, urllib_post,
raw_post)`` sends one request through ``urllib`` (``urllib_post(url, path, body, headers)``) or as raw bytes on a
socket (``raw_post(url, head, body)``) and returns the status read.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

VISUAL_DIM, AUDIO_DIM = 8, 6
FIELDS = ("visual", "audio", "face_mask", "audio_mask")
MARKER_TEXT = "hostile-marker-5c1f"  # a value no log line may quote
MARKER_VALUE = 7.123456789
OCTETS = {"Content-Type": "application/octet-stream"}
MB = 1_000_000


def as_npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, special: str | None) -> np.ndarray:
    """Random values of ``shape`` cast to ``dtype`` (any byte order), one of them ``special`` if asked."""
    values = rng.standard_normal(shape) * 3
    if special and values.size:
        values.flat[int(rng.integers(values.size))] = {"nan": np.nan, "inf": np.inf, "huge": 1e39}[special]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype.endswith("b1"):
            return values > 0
        return values.astype(np.dtype(dtype))


def _mostly(draw: st.DrawFn, valid: object, invalid: list[object]) -> object:
    """``valid`` eleven times in twelve, else one of ``invalid``: about half the bodies stay valid."""
    return valid if draw(st.integers(0, 11)) else draw(st.sampled_from(invalid))


@st.composite
def npz_bodies(draw: st.DrawFn) -> tuple[bytes, int | None, tuple[str, ...]]:
    """An ``.npz`` body: feature arrays of any float dtype, byte order and memory order, masks; now and then an
    array of another dtype, shape, width or length, a special value, or an extra member. With the frames a 200 must
    label and the extra members' names."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 48))
    arrays: dict[str, np.ndarray] = {}
    present = draw(st.sampled_from([("visual", "audio")] * 4 + [("visual",), ("audio",), ()]))
    for name, width in (("visual", VISUAL_DIM), ("audio", AUDIO_DIM)):
        if name not in present:
            continue
        frames = n + _mostly(draw, 0, [1, -1, -n])
        columns = _mostly(draw, width, [0, 1, width + 1])
        shape = _mostly(draw, (frames, columns), [(frames,), (frames, columns, 2), ()])
        kind = _mostly(draw, draw(st.sampled_from(["f2", "f4", "f8"])), ["i4", "u2", "c8", "b1"])
        order = draw(st.sampled_from(["<", ">", "="]))
        special = _mostly(draw, None, ["nan", "inf", "huge"])
        array = _values(rng, tuple(max(0, size) for size in shape), order + kind, special)
        arrays[name] = np.asfortranarray(array) if draw(st.booleans()) else array
    for name in ("face_mask", "audio_mask"):
        if draw(st.booleans()):
            frames = max(0, n + _mostly(draw, 0, [1, -1]))
            kind = _mostly(draw, "b1", ["i1", ">u2", "<f4"])
            shape = _mostly(draw, (frames,), [(frames, 1)])
            arrays[name] = _values(rng, shape, kind, None)
    extra = _mostly(draw, None, ["faces", "../visual", "visual/../audio", "x" * 120])
    if extra:
        arrays[extra] = np.ones(3, np.float32)
    first = next((arrays[name] for name in ("visual", "audio") if name in arrays), None)
    frames = int(first.shape[0]) if first is not None and first.ndim else None
    return as_npz(**arrays), frames, (extra,) if extra else ()


_JSON_VALUES = st.one_of(
    st.floats(width=64),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)


@st.composite
def json_bodies(draw: st.DrawFn) -> tuple[str, int | None]:
    """A JSON body for ``/predict`` (NaN and Infinity tokens included): fields of any JSON type, rows of any width
    and length, masks of any type; with the frames a 200 must label."""
    n = draw(st.integers(0, 30))
    body: dict[str, object] = {}
    for name, width in (("visual", VISUAL_DIM), ("audio", AUDIO_DIM)):
        shape = draw(st.sampled_from(["rows"] * 5 + ["absent", "null", "scalar", "ragged"]))
        if shape == "absent":
            continue
        if shape == "rows":
            columns = draw(st.sampled_from([width] * 4 + [width - 1]))
            typed = draw(st.sampled_from(["float"] * 4 + ["any"]))
            cell = st.floats(-1e6, 1e6, width=32) if typed == "float" else _JSON_VALUES
            body[name] = draw(st.lists(st.lists(cell, min_size=columns, max_size=columns), min_size=n, max_size=n))
        else:
            body[name] = {"null": None, "scalar": draw(_JSON_VALUES), "ragged": [[0.0] * width, [0.0]]}[shape]
    for name in ("face_mask", "audio_mask"):
        if draw(st.booleans()):
            entry = draw(st.sampled_from([st.booleans()] * 4 + [st.integers(0, 1), st.text(max_size=4)]))
            body[name] = draw(st.lists(entry, min_size=n, max_size=n + draw(st.integers(0, 1))))
    if draw(st.booleans()):
        body["fps"] = draw(st.one_of(st.floats(width=64), st.text(max_size=3), st.integers(-5, 100)))
    if draw(st.booleans()):
        body["return_probabilities"] = draw(st.one_of(st.booleans(), st.integers(0, 2), st.text(max_size=3)))
    rows = next((body[name] for name in ("visual", "audio") if isinstance(body.get(name), list)), None)
    return json.dumps(body), (len(rows) if rows is not None else None)


def _member(name: str, payload: bytes, compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        archive.writestr(name, payload)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _trailing_bomb(gigabytes: float = 0.5) -> bytes:
    """An archive whose ``visual`` member holds a valid 40 x 8 array followed by half a gigabyte of zeros, deflated."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("visual.npy", "w", force_zip64=True) as member,
    ):
        member.write(_npy(np.ones((40, VISUAL_DIM), np.float32)))
        block = bytes(MB)
        for _ in range(int(gigabytes * 1000)):
            member.write(block)
    return buffer.getvalue()


def _declared_bomb() -> bytes:
    """An archive whose member declares 100 000 x 100 000 floats (40 GB) and holds almost none of them."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
    return _member("visual.npy", header.getvalue() + bytes(64))


def _duplicated(name: str, payload: bytes) -> bytes:
    """An archive holding the member ``name`` twice."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        archive.writestr(name, payload)
        archive.writestr(name, payload)
    return buffer.getvalue()


def _many_members(count: int = 20_000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            archive.writestr(f"m{index}.npy", b"")
    return buffer.getvalue()


TRAILING_BOMB = _trailing_bomb()
ONES_V, ONES_A = np.ones((40, VISUAL_DIM), np.float32), np.ones((40, AUDIO_DIM), np.float32)
GOOD = as_npz(visual=ONES_V, audio=ONES_A)
Sender = Callable[..., int]


def _post(path: str, body: bytes, headers: dict[str, str] | None = None) -> Callable[[str, Sender, Sender], int]:
    return lambda url, urllib_post, raw_post: urllib_post(url, path, body, OCTETS if headers is None else headers)


def _npz(path: str = "/predict_npz", **arrays: np.ndarray) -> Callable[[str, Sender, Sender], int]:
    return _post(path, as_npz(**arrays))


def _raw(path: str, headers: dict[str, str], body: bytes) -> Callable[[str, Sender, Sender], int]:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return lambda url, urllib_post, raw_post: raw_post(url, "\r\n".join(lines).encode(), body)


def _stream_append(body: bytes) -> Callable[[str, Sender, Sender], int]:
    """Open a session (urllib), append ``body`` to it, close it; the append's status."""

    def send(url: str, urllib_post: Sender, raw_post: Sender) -> int:
        import urllib.request

        with urllib.request.urlopen(urllib.request.Request(f"{url}/stream/open", data=b""), timeout=60) as opened:
            session = json.loads(opened.read())["session"]
        status = urllib_post(url, f"/stream/{session}/append", body, OCTETS)
        urllib_post(url, f"/stream/{session}/close", b"", OCTETS)
        return status

    return send


def _chunked(body: bytes) -> bytes:
    return b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:500], body[500:])) + b"0\r\n\r\n"


def _f(dtype: str, shape: tuple[int, ...] = (40, VISUAL_DIM)) -> np.ndarray:
    return np.ones(shape, np.dtype(dtype))


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PROBE: dict[str, tuple[Callable[[str, Sender, Sender], int], int]] = {
    "byte order: big-endian float16 visual and audio": (_npz(visual=_f(">f2"), audio=_f(">f2", (40, 6))), 200),
    "byte order: big-endian float32": (_npz(visual=_f(">f4"), audio=_f(">f4", (40, 6))), 200),
    "byte order: big-endian float64": (_npz(visual=_f(">f8")), 200),
    "byte order: little-endian float16 (control)": (_npz(visual=_f("<f2")), 200),
    "byte order: big-endian Fortran-order float32": (_npz(visual=np.asfortranarray(_f(">f4"))), 200),
    "byte order: big-endian int32": (_npz(visual=_f(">i4")), 422),
    "byte order: big-endian complex64": (_npz(visual=_f(">c8")), 422),
    "byte order: big-endian uint16 mask": (_npz(visual=ONES_V, face_mask=_f(">u2", (40,))), 422),
    "byte order: big-endian float32 stream chunk": (
        _stream_append(as_npz(visual=_f(">f4"), audio=_f(">f2", (40, 6)))),
        200,
    ),
    "byte order: big-endian int16 stream chunk": (_stream_append(as_npz(audio=_f(">i2", (40, 6)))), 422),
    "lying header: JSON labelled octet-stream": (_post("/predict_npz", b'{"visual": [[0.0]]}'), 400),
    "lying header: an archive labelled JSON": (_post("/predict", GOOD, JSON), 400),
    "lying header: octet-stream with parameters": (
        _post("/predict_npz", GOOD, {"Content-Type": "application/octet-stream; x=1"}),
        200,
    ),
    "lying header: media type in capitals": (
        _post("/predict_npz", GOOD, {"Content-Type": "APPLICATION/OCTET-STREAM"}),
        200,
    ),
    "lying header: Content-Length shorter than the body": (
        _raw("/predict_npz", {**OCTETS, "Content-Length": "100"}, GOOD),
        400,
    ),
    "lying header: Content-Length of 10 GB, 1 kB sent": (
        _raw("/predict_npz", {**OCTETS, "Content-Length": str(10**10)}, bytes(1000)),
        413,
    ),
    "lying header: Content-Length and chunked together (chunked wins, RFC 9112)": (
        _raw("/predict_npz", {**OCTETS, "Content-Length": "10", "Transfer-Encoding": "chunked"}, _chunked(GOOD)),
        200,
    ),
    "lying header: chunked archive": (
        _raw("/predict_npz", {**OCTETS, "Transfer-Encoding": "chunked"}, _chunked(GOOD)),
        200,
    ),
    "lying header: Expect 100-continue for a form": (
        _raw("/predict", {**FORM, "Content-Length": "5000000", "Expect": "100-continue"}, b""),
        415,
    ),
    "lying header: a pickle media type": (
        _post("/predict", b"\x80\x04K\x01.", {"Content-Type": "application/python-pickle"}),
        415,
    ),
    "zip bomb: member declares 40 GB": (_post("/predict_npz", _declared_bomb()), 413),
    "zip bomb: trailing half gigabyte": (_post("/predict_npz", TRAILING_BOMB), 200),
    "zip bomb: 20 000 empty members": (_post("/predict_npz", _many_members()), 422),
    "zip bomb: an archive inside the archive": (_post("/predict_npz", _member("visual.npy", GOOD, compress=True)), 400),
    "zip bomb: 10 000 frames of zeros deflated": (
        _post("/predict_npz", _member("audio.npy", _npy(np.zeros((10_000, AUDIO_DIM), np.float32)), compress=True)),
        200,
    ),
    "member name: ../../etc/visual.npy": (_post("/predict_npz", _member("../../etc/visual.npy", _npy(ONES_V))), 422),
    "member name: /absolute/visual.npy": (_post("/predict_npz", _member("/absolute/visual.npy", _npy(ONES_V))), 422),
    "member name: visual/../audio.npy": (_post("/predict_npz", _member("visual/../audio.npy", _npy(ONES_A))), 422),
    "member name: backslashes ..\\visual.npy": (_post("/predict_npz", _member("..\\visual.npy", _npy(ONES_V))), 422),
    "member name: 4000 characters": (_post("/predict_npz", _member("v" * 4000 + ".npy", _npy(ONES_V))), 422),
    "member name: visual twice": (_post("/predict_npz", _duplicated("visual.npy", _npy(ONES_V))), 422),
    "mask: float32 face_mask": (_npz(visual=ONES_V, face_mask=np.ones(40, np.float32)), 422),
    "mask: 2-D audio_mask": (_npz(audio=ONES_A, audio_mask=np.ones((40, 1), bool)), 422),
    "mask: one frame short": (_npz(visual=ONES_V, face_mask=np.ones(39, bool)), 422),
    "mask: marks frames of an absent stream": (_npz(audio=ONES_A, face_mask=np.ones(40, bool)), 422),
    "mask: every frame missing in both streams": (
        _npz(visual=ONES_V, audio=ONES_A, face_mask=np.zeros(40, bool), audio_mask=np.zeros(40, bool)),
        200,
    ),
    "mask: JSON integers": (
        _post("/predict", json.dumps({"visual": ONES_V.tolist(), "face_mask": [1] * 40}).encode(), JSON),
        400,
    ),
    "mask: JSON strings": (
        _post("/predict", json.dumps({"visual": ONES_V.tolist(), "face_mask": ["true"] * 40}).encode(), JSON),
        400,
    ),
    "query: negative fps": (_post("/predict_npz?fps=-1", GOOD), 400),
    "query: fps nan": (_post("/predict_npz?fps=nan", GOOD), 400),
    "query: fps inf": (_post("/predict_npz?fps=inf", GOOD), 400),
    "query: fps 1e309": (_post("/predict_npz?fps=1e309", GOOD), 400),
    "query: return_probabilities=maybe": (_post("/predict_npz?return_probabilities=maybe", GOOD), 400),
    "query: an unknown option": (_post("/predict_npz?window=1", GOOD), 400),
    "query: fps twice": (_post("/predict_npz?fps=30&fps=25", GOOD), 200),
    "query: stream fps abc": (_post("/stream/open?fps=abc", b""), 400),
    "query: 8 kB of options": (_post("/predict_npz?" + "&".join(f"o{i}=1" for i in range(1500)), GOOD), 400),
    "large refused: 1 MB form to /predict": (_post("/predict", bytes(MB), FORM), 415),
    "large refused: 10 MB text to /predict_npz": (
        _post("/predict_npz", bytes(10 * MB), {"Content-Type": "text/plain"}),
        415,
    ),
    "large refused: 10 MB archive over the limit": (_post("/predict_npz", bytes(10 * MB)), 413),
    "large refused: 10 MB JSON over the limit": (_post("/predict", b"[" + b"0," * (5 * MB) + b"0]", JSON), 413),
    "large refused: 10 MB video of the wrong type": (
        _post("/predict_video", bytes(10 * MB), {"Content-Type": "video/mp4"}),
        415,
    ),
    "large refused: 10 MB stream chunk over the limit": (_post("/stream/none/append", bytes(10 * MB)), 413),
    "session: append to an unknown session": (_post("/stream/no-such-session/append", GOOD), 404),
    "session: close an unknown session": (_post("/stream/no-such-session/close", b""), 404),
    "session: a traversal as the id": (_post("/stream/..%2F..%2Fmodel/append", GOOD), 404),
    "empty: /predict": (_post("/predict", b"", JSON), 422),
    "empty: /predict_npz": (_post("/predict_npz", b""), 400),
}
