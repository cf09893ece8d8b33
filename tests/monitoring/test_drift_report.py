"""The offline drift report on a hand-made request log, and the service's request-log writer.

Expected figures are hand computations: a bin whose shares equal the reference has JS distance 0; a bin whose frames
all fall outside the reference's support has JS distance 1 (base 2); missing-face rates are counted by hand.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exprfusion.cli import app
from exprfusion.core.errors import InputError
from exprfusion.monitoring.drift_report import drift_series, request_record
from exprfusion.monitoring.request_log import RequestLog, log_files, read_request_log

REFERENCE = [0.5, 0.5, 0, 0, 0, 0, 0, 0]
T0 = 1_764_460_800.0  # 2025-11-30 00:00:00 UTC


def _record(when: float, counts: list[int], missing_face: int, reference=REFERENCE, version="m/1") -> dict:
    return {
        "time": when,
        "model_version": version,
        "n_frames": sum(counts),
        "counts": counts,
        "missing_face": missing_face,
        "missing_audio": 0,
        "reference": reference,
    }


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Bin 0 (first minute): shares equal to the reference, 2 of 20 frames without a face, in the rotated file;
    bin 1 (second minute): every frame of class 2, outside the reference's support, 9 of 10 without a face."""
    path = tmp_path / "requests.jsonl"
    _write(
        tmp_path / "requests.jsonl.1", [_record(T0, [3, 3, 0, 0, 0, 0, 0, 0], 0), _record(T0 + 10, [7, 7] + [0] * 6, 2)]
    )
    _write(path, [_record(T0 + 70, [0, 0, 4, 0, 0, 0, 0, 0], 4), _record(T0 + 61, [0, 0, 6, 0, 0, 0, 0, 0], 5)])
    return path


def test_series_of_a_hand_made_log(log):
    assert [file.name for file in log_files(log)] == ["requests.jsonl.1", "requests.jsonl"]
    series = drift_series(read_request_log([log]), bin_seconds=60)
    assert series.n_frames.tolist() == [20, 10]
    assert series.counts[1].tolist() == [0, 0, 10, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(series.js_distance, [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(series.missing_face_rate, [0.1, 0.9])
    assert series.psi[0] == pytest.approx(0.0, abs=1e-12) and series.psi[1] > 1
    assert series.starts.tolist() == [T0, T0 + 60]


def test_the_reference_of_each_record_or_a_given_one(log, tmp_path):
    # Given a uniform reference instead, the first bin (half class 0, half class 1) is no longer at distance 0.
    series = drift_series(read_request_log([log]), reference=np.ones(8), bin_seconds=60)
    assert series.js_distance[0] > 0.4
    # Records of two models: each bin compares against the frame-weighted mean of its records' references.
    other = [0, 0, 1, 0, 0, 0, 0, 0]
    mixed = tmp_path / "mixed.jsonl"
    _write(mixed, [_record(T0, [0, 0, 10, 0, 0, 0, 0, 0], 0, other, "m/2"), _record(T0 + 1, [5, 5] + [0] * 6, 0)])
    series = drift_series(read_request_log([mixed]), bin_seconds=60)
    # The mix of references, 10 frames each: (0, 0, 1, ...) / 2 + (.5, .5, 0, ...) / 2 = (.25, .25, .5): the shares.
    assert series.js_distance[0] == pytest.approx(0.0, abs=1e-12)
    assert series.model_versions == ["m/2", "m/1"]
    with pytest.raises(InputError, match="no record carries a reference distribution"):
        drift_series([_record(T0, [1] * 8, 0, reference=None)])


def test_a_bad_line_is_named(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(_record(T0, [1] * 8, 0)) + "\n{not json\n")
    with pytest.raises(InputError, match=r"requests.jsonl:2: not a JSON record"):
        read_request_log([path])
    path.write_text(json.dumps({**_record(T0, [1] * 8, 0), "n_frames": 9}) + "\n")
    with pytest.raises(InputError, match=r"requests.jsonl:1: 'counts' sum to 8, 'n_frames' is 9"):
        read_request_log([path])


def test_cli_writes_an_html_report_with_three_plots(log, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["drift-report", str(log), "--out", str(out), "--bin-seconds", "60"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "<td>1.0000</td>" in page and "<td>0.900</td>" in page  # bin 1: JS distance 1, 90 % without a face
    missing = CliRunner().invoke(app, ["drift-report", str(tmp_path / "none.jsonl"), "--out", str(out)])
    assert missing.exit_code == 2 and "does not exist, nor any worker's none-*.jsonl beside it" in missing.output


def test_the_configured_name_or_its_folder_reads_every_workers_file(tmp_path):
    """Given ``logs/requests.jsonl`` (as configured; no such file) or ``logs/``, the report reads the workers' files of
    two servers and their rotated files, and prints which files and how many records; other logs stay out."""
    logs = tmp_path / "logs"
    logs.mkdir()
    files = {
        "requests-host-3000-exprfusion-w1.jsonl.1": 2,
        "requests-host-3000-exprfusion-w1.jsonl": 1,
        "requests-host-3000-exprfusion-w2.jsonl": 3,
        "requests-host-3001-exprfusion-w1.jsonl": 4,
    }
    for number, (name, count) in enumerate(files.items()):
        _write(logs / name, [_record(T0 + 10 * number + i, [1, 1, 0, 0, 0, 0, 0, 0], 0) for i in range(count)])
    _write(tmp_path / "requests-elsewhere-w1.jsonl", [_record(T0, [5, 0, 0, 0, 0, 0, 0, 0], 0)])  # not in logs/
    (logs / "notes.txt").write_text("not a log")
    out = tmp_path / "report.html"
    for given in (logs / "requests.jsonl", logs):
        result = CliRunner().invoke(app, ["drift-report", str(given), "--out", str(out)])
        assert result.exit_code == 0, result.output
        printed = result.output.replace("\n", "")  # the console wraps long lines
        for name, count in files.items():
            assert f"read {count} {'record' if count == 1 else 'records'} from {logs / name}" in printed
        assert "(10 records from 4 files)" in printed
        assert "20 frames" in out.read_text()  # 10 records of 2 frames: the file outside logs/ is not read


def test_request_log_writes_rotates_and_never_raises(tmp_path):
    path = tmp_path / "logs" / "requests-host-3000-exprfusion-w2.jsonl"
    writer = RequestLog(path, max_bytes=600, backups=2)
    labels, faces = np.array([0, 0, 3, 7]), np.array([True, False, True, True])
    for i in range(12):
        writer.write(request_record(labels, faces, np.ones(4, bool), "m/1", REFERENCE, when=T0 + i))
    writer.close()
    records = read_request_log([path.parent / "requests.jsonl"])  # the configured name
    assert [file.name for file in log_files(path.parent / "requests.jsonl")] == [
        f"{path.name}.2",
        f"{path.name}.1",
        path.name,
    ]
    assert 0 < len(records) < 12  # the oldest rotated out (two backups of at most 600 bytes)
    assert [record["time"] for record in records] == [T0 + i for i in range(12 - len(records), 12)]
    assert records[-1]["counts"] == [2, 0, 0, 1, 0, 0, 0, 1] and records[-1]["missing_face"] == 1

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    unwritable = RequestLog(blocked / "requests.jsonl", max_bytes=1000, backups=1)  # its folder is a file
    started = time.perf_counter()
    unwritable.write(request_record(labels, faces, np.ones(4, bool), "m/1", None))
    assert time.perf_counter() - started < 0.1
    unwritable.close()
