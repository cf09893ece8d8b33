"""The result tables of README.md and docs/ are what their files give (docs/generate_tables.py in check mode)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_tables", ROOT / "docs" / "generate_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


generate_tables = load_generator()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the documents and the committed results (not reports/, which is this machine's run)."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = generate_tables.main(["--check", "--root", str(root)])
    return status, capsys.readouterr().out


def test_committed_tables_match_their_files(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = check(ROOT, capsys)
    assert status == 0, f"stale tables (run `make docs`):\n{out}"


def test_every_committed_source_has_its_table_placed() -> None:
    text = "\n".join(path.read_text() for path in generate_tables.documents(ROOT))
    placed = set(generate_tables.OPENING.findall(text))
    assert placed == set(generate_tables.TABLES)


def test_a_tampered_table_is_detected_and_rewritten(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = copy / "docs" / "benchmarks.md"
    original = page.read_text()
    row = "| `fusion` | 3 | 0.515 |"
    assert row in original
    page.write_text(original.replace(row, "| `fusion` | 3 | 0.555 |"))

    status, out = check(copy, capsys)
    assert status == 1
    assert "docs/benchmarks.md: stale: ablation" in out

    assert generate_tables.main(["--root", str(copy)]) == 0
    capsys.readouterr()
    assert page.read_text() == original
    assert check(copy, capsys)[0] == 0


def test_a_changed_results_file_is_detected(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = copy / "benchmarks" / "results" / "ablation.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    visual = next(r for r in records if r["row"] == "visual")  # one seed: its figure is the table's
    visual["macro_f1"] = 0.6
    results.write_text("".join(json.dumps(r) + "\n" for r in records))

    status, out = check(copy, capsys)
    assert status == 1
    assert "ablation" in out.split("stale: ")[1]
    generate_tables.main(["--root", str(copy)])
    assert "| `visual` | 1 | 0.600 |" in (copy / "docs" / "benchmarks.md").read_text()


def repro_run(seed: int, f1: float, commit: str = "abcdef123456") -> dict:
    """A line as benchmarks/repro_seeds.py writes it, with the evaluation.json keys the tables read."""
    baseline = {"reference_macro_f1": 0.419, "margin": f1 - 0.419, "audio_floor_margin": f1 - 0.5}
    return {
        "benchmark": "repro_seeds", "date": f"2026-12-0{5 + seed}", "commit": commit, "profile": "realistic",
        "seed": seed, "cpu": "AMD EPYC (2 cores, no native bf16)", "seconds": 240.0 + 60 * seed,
        "metrics": {"macro_f1": f1, "macro_f1_ci": [f1 - 0.04, f1 + 0.05], "baseline": baseline},
    }  # fmt: skip


def test_repro_seeds_absent_then_present(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / "benchmarks" / "results" / "repro_seeds.jsonl").unlink(missing_ok=True)
    sources = generate_tables.Sources(copy / "benchmarks" / "results", copy / "reports")
    repro, history = generate_tables.TABLES["repro"].render, generate_tables.TABLES["repro-history"].render
    assert repro(sources) == history(sources) == "Not measured yet — run `python benchmarks/repro_seeds.py`."

    runs = [repro_run(0, 0.40, "0ld0000commit"), repro_run(2, 0.54), repro_run(0, 0.50), repro_run(1, 0.52)]
    (copy / "benchmarks" / "results" / "repro_seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    table = repro(sources)
    # The last commit measured: mean 0.52; sample s.d. sqrt((0.02² + 0 + 0.02²) / 2) = 0.02; intervals 0.46 to 0.59;
    # margins 0.081, 0.101, 0.121; no-face margins 0.00, 0.02, 0.04.
    assert "| `realistic` | 0, 1, 2 | 0.520 ± 0.020 | 0.460–0.590 | 0.419 | 0.101 ± 0.020 | 0.020 ± 0.020 |" in table
    assert "2026-12-05 to 2026-12-07, `abcdef1`, AMD EPYC (2 cores, no native bf16) |" in table
    assert "0ld0000" not in table
    rows = history(sources).splitlines()[2:]
    assert rows[0].startswith("| 2026-12-05 | `0ld0000` | `realistic` | 0 | 0.400 | -0.019 | -0.100 | 4.0 min |")
    assert rows[1].startswith("| 2026-12-05 to 2026-12-07 | `abcdef1` | `realistic` | 0, 1, 2 | 0.520 ± 0.020 |")
    assert "| 5.0 min |" in rows[1]

    # The README shows it once `make docs` runs; until then check mode names the README's table as stale.
    status, out = check(copy, capsys)
    assert status == 1
    assert "README.md: stale: repro" in out


def test_the_local_run_table_is_filled_but_never_checked(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / "reports").mkdir()
    metrics = {
        "split": "validation",
        "macro_f1": 0.5136,
        "macro_f1_ci": [0.47, 0.55],
        "accuracy": 0.7,
        "robustness": {"0.0": 0.5136, "1.0": 0.42},
        "baseline": {"both": 0.419, "visual": 0.35, "audio": 0.399, "margin": 0.0946, "margin_ci": [0.05, 0.13]},
    }
    (copy / "reports" / "evaluation.json").write_text(json.dumps(metrics))
    assert check(copy, capsys)[0] == 0  # this machine's run is not a committed file

    generate_tables.main(["--root", str(copy)])
    page = (copy / "docs" / "pipeline.md").read_text()
    assert "| model, macro-F1 (voting + median filter) | 0.514 (0.470–0.550) |" in page
    assert "| model, 100 % of faces hidden | 0.420 |" in page
    assert "| baseline: margin | 0.095 (0.050–0.130) |" in page


def test_an_unknown_or_unclosed_marker_is_an_error(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = copy / "docs" / "index.md"
    text = page.read_text()
    page.write_text(text + "\n<!-- table:no-such-table -->\n\n<!-- /table:no-such-table -->\n")
    assert generate_tables.main(["--check", "--root", str(copy)]) == 2
    page.write_text(text + "\n<!-- table:ablation -->\n")
    assert generate_tables.main(["--check", "--root", str(copy)]) == 2
    assert "never closed: ablation" in capsys.readouterr().err


def test_a_marker_quoted_in_a_sentence_is_text(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text() + "\nPlace `<!-- table:name -->` on a line of its own.\n")
    assert check(copy, capsys)[0] == 0
