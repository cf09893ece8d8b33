"""benchmarks/ablation.py end to end on a tiny corpus: rows in parallel workers, the table, resumable results, and
what the rows must show on a corpus whose class lives in the faces alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_planted_record

from exprfusion.data.corpus_writer import CorpusWriter

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ablation.py"


def write_face_signal_corpus(root: Path) -> Path:
    """Labels planted in the visual features only; the audio is noise (``make_planted_record``)."""
    with CorpusWriter(root) as writer:
        for i in range(4):
            writer.add(make_planted_record(f"t{i}", "train", n=120, seed=i, signal="visual"))
        for i in range(2):
            writer.add(make_planted_record(f"v{i}", "validation", n=100, seed=10 + i, signal="visual"))
    return root


def run_ablation(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ablation_prints_the_table_and_resumes_from_its_results(tmp_path):
    corpus = write_face_signal_corpus(tmp_path / "corpus")
    results = tmp_path / "ablation.jsonl"
    table = tmp_path / "ablation.md"
    common = ("--corpus", str(corpus), "--epochs", "4", "--jobs", "2", "--results", str(results))

    plot = tmp_path / "ablation.png"
    first = run_ablation(*common, "--rows", "fusion", "visual", "--out", str(table), "--plot", str(plot))
    assert first.returncode == 0, first.stderr
    assert "2 run(s) to train, 0 already measured" in first.stdout
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(line["row"] for line in lines) == ["fusion", "visual"]
    for line in lines:
        assert line["epochs"] == 4
        for key in ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame", "missing_50"):
            assert 0.0 <= line[key] <= 1.0
    written = table.read_text()
    assert "| fusion | gated | 0.1 | 256 | 3 |" in written
    assert "| visual | visual | 0.1 | 256 | 3 |" in written
    assert [line.endswith("| 1 |") for line in written.splitlines()[2:4]] == [True, True]  # one seed per row
    assert "voting + median" in written  # the claims checked on the rows present
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000

    second = run_ablation(*common, "--rows", "fusion", "visual", "audio")
    assert second.returncode == 0, second.stderr
    assert "1 run(s) to train, 2 already measured" in second.stdout
    rows = {line["row"]: line for line in map(json.loads, results.read_text().splitlines())}
    assert len(rows) == 3
    assert "fusion 0." in second.stdout and "> best single modality" in second.stdout
    # The class lives in the faces: the rows that read them learn it (macro-F1 0.28-0.41 over seeds 0-2), the audio
    # row reads noise and stays below chance for eight classes (0.05-0.07), and hiding half the faces costs the
    # face-reading rows F1 but leaves the audio row exactly where it was.
    audio = rows["audio"]
    assert audio["macro_f1"] < 1 / 8, audio
    for name in ("fusion", "visual"):
        assert rows[name]["macro_f1"] > audio["macro_f1"] + 0.15, (name, rows[name]["macro_f1"], audio["macro_f1"])
        assert rows[name]["missing_50"] < rows[name]["macro_f1"] - 0.03, (name, rows[name])
    assert audio["missing_50"] == pytest.approx(audio["macro_f1"], abs=1e-9)
