"""benchmarks/ablation.py end to end on a tiny corpus: rows in parallel workers, the table, resumable results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import write_small_corpus

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ablation.py"


def run_ablation(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ablation_prints_the_table_and_resumes_from_its_results(tmp_path):
    corpus = write_small_corpus(tmp_path / "corpus")
    results = tmp_path / "ablation.jsonl"
    table = tmp_path / "ablation.md"
    common = ("--corpus", str(corpus), "--epochs", "1", "--jobs", "2", "--results", str(results))

    plot = tmp_path / "ablation.png"
    first = run_ablation(*common, "--rows", "fusion", "visual", "--out", str(table), "--plot", str(plot))
    assert first.returncode == 0, first.stderr
    assert "2 run(s) to train, 0 already measured" in first.stdout
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(line["row"] for line in lines) == ["fusion", "visual"]
    for line in lines:
        assert line["epochs"] == 1
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
    assert len(results.read_text().splitlines()) == 3
    assert "fusion 0." in second.stdout and "> best single modality" in second.stdout
