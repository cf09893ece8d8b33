"""`make repro`'s pipeline at several search seeds: the spread a single figure hides.

Each seed runs `dvc repro evaluate` in a fresh clone of the current commit (its own MLflow store and BentoML home),
with `tune.train.seed` (the seed of every trial and of the final training) set; everything else is params.yaml.
One JSON line per run goes to ``benchmarks/results/repro_seeds.jsonl`` (commit, profile, seed, CPU, seconds, and
the run's whole evaluation report, ``reports/evaluation.json``); a seed already measured at the same commit and
profile is skipped, so an interrupted run resumes. The docs' results tables are generated from that file.

    python benchmarks/repro_seeds.py                     # seeds 0 1 2 on params.yaml's profile
    python benchmarks/repro_seeds.py --seeds 3 4 --profile default
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results" / "repro_seeds.jsonl"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), and whether it computes bf16 natively."""
    name = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    from exprfusion.core.devices import cpu_has_native_bf16

    return f"{name} ({os.cpu_count()} cores, {'bf16 native' if cpu_has_native_bf16() else 'no native bf16'})"


def commit_of(repository: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True, text=True, check=True
    ).stdout.strip()


def measured(path: Path) -> set[tuple[str, str, int]]:
    """(commit, profile, seed) of the runs already in ``path``."""
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(row["commit"], row["profile"], row["seed"]) for row in rows}


def run_seed(seed: int, profile: str | None, commit: str) -> dict:
    """`dvc repro evaluate` at ``seed`` in a fresh clone; return the result row."""
    with tempfile.TemporaryDirectory(prefix="repro-seed-") as folder:
        clone = Path(folder) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
        params_path = clone / "params.yaml"
        params = yaml.safe_load(params_path.read_text())
        params["tune"]["train"]["seed"] = seed
        if profile is not None:
            params["data"]["synthetic"]["profile"] = profile
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        environment = {
            **os.environ,
            "PYTHONPATH": str(clone / "src"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{clone / 'mlflow.db'}",
            "BENTOML_HOME": str(clone / ".bentoml"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro", "evaluate"], cwd=clone, env=environment, check=True)
        seconds = time.perf_counter() - started
        metrics = json.loads((clone / "reports" / "evaluation.json").read_text())
        best = json.loads((clone / "reports" / "best.json").read_text())
    return {
        "benchmark": "repro_seeds",
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "profile": params["data"]["synthetic"]["profile"],
        "seed": seed,
        "cpu": cpu_model(),
        "seconds": round(seconds, 1),
        "best_config": best.get("config"),
        "metrics": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default=None, help="synthetic profile (default: params.yaml's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    commit = commit_of(REPOSITORY)
    profile = (
        arguments.profile or yaml.safe_load((REPOSITORY / "params.yaml").read_text())["data"]["synthetic"]["profile"]
    )
    done = measured(arguments.out)
    for seed in arguments.seeds:
        if (commit, profile, seed) in done:
            print(f"seed {seed}: already measured at {commit[:7]} on {profile}")
            continue
        row = run_seed(seed, profile, commit)
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        with arguments.out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"seed {seed}: validation macro-F1 {row['metrics']['macro_f1']:.4f} in {row['seconds']:.0f} s")
    rows = [json.loads(line) for line in arguments.out.read_text().splitlines() if line.strip()]
    scores = [row["metrics"]["macro_f1"] for row in rows if row["commit"] == commit and row["profile"] == profile]
    if len(scores) > 1:
        print(
            f"{profile} at {commit[:7]}: macro-F1 mean {statistics.mean(scores):.4f}, "
            f"sd {statistics.stdev(scores):.4f} over {len(scores)} seeds"
        )


if __name__ == "__main__":
    main()
