"""Writes the result tables of README.md and docs/ from the files that hold the figures.

A table sits between two marker comments, each a line of its own, and everything between them is this script's
output:

    <!-- table:ablation -->
    ...
    <!-- /table:ablation -->

Each table is a function below, registered under its marker's name, that reads its files and returns Markdown. The
figures come from ``benchmarks/results/*.jsonl`` (committed: one JSON line per run of a benchmark) and, for the
``last-run`` table, from ``reports/evaluation.json`` (the pipeline's output on this machine, not committed). What a
table adds is the arithmetic stated in its page: a median or mean over seeds, with the range.

    python docs/generate_tables.py           # rewrite every table in README.md and docs/**/*.md
    python docs/generate_tables.py --check   # exit 1, naming each table, if a committed table differs from its files

``--check`` skips the tables read from ``reports/`` (their figures are this machine's last run, not a committed
file). A marker naming no table here, or a table opened and never closed, is an error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A marker is a line of its own; one quoted inside a sentence or a code span is text.
MARKER = re.compile(
    r"^<!-- table:(?P<name>[\w-]+) -->\n(?P<body>.*?)^<!-- /table:(?P=name) -->$", re.DOTALL | re.MULTILINE
)
OPENING = re.compile(r"^<!-- table:([\w-]+) -->$", re.MULTILINE)

# The corpora the lever probes name by path: `make repro`'s corpus was the `default` profile when they ran.
CORPUS_PROFILES = {"data/corpus": "default", "/tmp/corpus_realistic": "realistic"}
# The weights `benchmarks/lever_probe.py` scores the refit at (its EXPERT_WEIGHTS), in the order of the records' lists.
EXPERT_WEIGHTS = {"joint": (0, 1, 2, 4, 100), "audio": (0, 2, 4, 8, 16)}


class TableError(Exception):
    """The docs or the files cannot make a table: a missing record, an unknown marker, a marker left open."""


@dataclass(frozen=True)
class Sources:
    """Where the tables read: ``results`` (benchmarks/results) and ``reports`` (the pipeline's reports)."""

    results: Path
    reports: Path

    def records(self, name: str) -> list[dict]:
        """The JSON lines of ``<results>/<name>.jsonl``, in file order."""
        path = self.results / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Table:
    render: Callable[[Sources], str]
    local: bool  # read from reports/ (this machine's last run): not compared by --check


TABLES: dict[str, Table] = {}


def table(name: str, local: bool = False) -> Callable[[Callable[[Sources], str]], Callable[[Sources], str]]:
    def register(render: Callable[[Sources], str]) -> Callable[[Sources], str]:
        TABLES[name] = Table(render, local)
        return render

    return register


# --- formatting -------------------------------------------------------------------------------------------------


def markdown(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def f3(value: float) -> str:
    return f"{value:.3f}"


def spread(values: list[float], center: Callable[[list[float]], float] = statistics.mean) -> str:
    """``center (min–max, n seeds)``; one value alone as itself, with ``1 seed``."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{f3(values[0])} (1 seed)"
    return f"{f3(center(values))} ({f3(min(values))}–{f3(max(values))}, {len(values)} seeds)"


def mean_or_dash(values: list[float]) -> str:
    return f3(statistics.mean(values)) if values else "–"


# --- lever probes: benchmarks/lever_probe.py ----------------------------------------------------------------------


def profile_of(record: dict) -> str:
    if "profile" in record:
        return record["profile"]
    corpus = record["corpus"]
    if corpus in CORPUS_PROFILES:
        return CORPUS_PROFILES[corpus]
    return corpus.split(" ")[0]  # "default (seed 0)", "realistic (seed 0)"


def pick(sources: Sources, file: str, profile: str, tags: Iterable[str]) -> list[dict]:
    """The records of ``file`` with these tags on this profile, in the order of ``tags``; a missing one is an error."""
    by_tag = {record["tag"]: record for record in sources.records(file) if profile_of(record) == profile}
    missing = [tag for tag in tags if tag not in by_tag]
    if missing:
        raise TableError(f"benchmarks/results/{file}.jsonl has no {profile} record tagged {', '.join(missing)}")
    return [by_tag[tag] for tag in tags]


PROFILES = ("default", "realistic")


@dataclass(frozen=True)
class Lever:
    """One row of a lever table: its label and, per profile, the file and tags of its runs (one per seed)."""

    label: str
    file: str
    tags: dict[str, tuple[str, ...]]
    no_face: bool = True  # False: the runs predate the audio head, so their no-face figure is not comparable


def lever(label: str, file: str, default: tuple[str, ...] = (), realistic: tuple[str, ...] = (), no_face=True) -> Lever:
    return Lever(label, file, {p: t for p, t in zip(PROFILES, (default, realistic), strict=True) if t}, no_face)


def seeds(prefix: str, n: int = 3) -> tuple[str, ...]:
    return tuple(f"{prefix}_s{seed}" for seed in range(n))


LEVER_HEADER = ["run", *(f"`{p}`" for p in PROFILES), *(f"`{p}`, no face" for p in PROFILES)]
LEVER_HEADER += [f"`{p}`, holdout" for p in PROFILES]


def lever_rows(sources: Sources, levers: list[Lever]) -> list[list[str]]:
    """Per lever and profile: validation (mean and range over seeds), then the means with every face hidden and on
    the training holdout."""
    rows = []
    for row in levers:
        runs = {p: pick(sources, row.file, p, row.tags[p]) if p in row.tags else [] for p in PROFILES}
        cells = [spread([r["refit_val"] for r in runs[p]]) for p in PROFILES]
        cells += [mean_or_dash([r["refit_noface"] for r in runs[p]] if row.no_face else []) for p in PROFILES]
        cells += [mean_or_dash([r["holdout"] for r in runs[p]]) for p in PROFILES]
        rows.append([row.label, *cells])
    return rows


def overrides(record: dict) -> str:
    """The settings a probe changed (seed apart), as ``key=value``; none: the probe's own settings."""
    changed = {**record["model"], **{k: v for k, v in record["train"].items() if k != "seed"}}
    return ", ".join(f"`{key}={value}`" for key, value in changed.items()) or "the probe's settings"


def seed_of(record: dict) -> str:
    return str(record["train"].get("seed", 0))


@table("levers-repro-scale")
def levers_repro_scale(sources: Sources) -> str:
    header = ["settings changed", "corpus", "seed", "holdout", "validation", "no face", "validation, τ = 0.5"]
    keys = ("holdout", "val_tau0.0", "no_face_tau0.0", "val_tau0.5")
    rows = [
        [overrides(r), f"`{profile_of(r)}`", seed_of(r), *(f3(r[key]) for key in keys)]
        for r in sources.records("lever_probe_repro_scale")
    ]
    return markdown(header, rows)


REFIT = "lever_probe_refit"
EXPERTS = "lever_probe_experts"
AUTO = "lever_probe_auto"
REFERENCE = lever("reference (the refit)", REFIT, seeds("def"), seeds("real"))
ROBUST = lever(
    "robust standardisation", REFIT, ("d_rob_s0", "d_rob_s1", "d_robp_s2"), ("r_rob_s0", "r_rob_s1", "r_robp_s2")
)
WITH_EXPERTS = lever("**experts** (joint weight 2, audio weight 8)", EXPERTS, seeds("experts"), seeds("experts"))


def figures(record: dict, keys: tuple[str, ...] = ("refit_noface", "refit_noface_audio_head")) -> list[str]:
    return [f3(record[key]) for key in keys]


@table("levers-refit-seeds")
def levers_refit_seeds(sources: Sources) -> str:
    header = ["corpus", "seed", "holdout (selection)", "selection run's model", "**refit**", "refit, no face"]
    header += ["refit, no face, audio head"]
    rows = [
        [f"`{profile}`", seed_of(r), f3(r["holdout"]), f3(r["sel_val"]), f"**{f3(r['refit_val'])}**", *figures(r)]
        for profile in PROFILES
        for r in pick(sources, REFIT, profile, REFERENCE.tags[profile])
    ]
    return markdown(header, rows)


@table("levers-refit")
def levers_refit(sources: Sources) -> str:
    rows = lever_rows(
        sources,
        [
            REFERENCE,
            lever("window readout", REFIT, seeds("d_ro0", 2), seeds("r_ro0")),
            lever("window readout, readout dropout 0.5", REFIT, seeds("d_ro05", 2), seeds("r_ro05")),
            lever("class weights, power 0.5", REFIT, seeds("d_cw05", 2), seeds("r_cw05", 2)),
            lever("class weights, power 1", REFIT, ("d_cw1_s0",), ("r_cw1_s0",)),
            lever("focal γ 0 (cross-entropy)", REFIT, seeds("d_g0", 2), seeds("r_g0", 2)),
            lever("mixup over windows, α 0.4 (measured and removed)", REFIT, seeds("d_mix04", 2), seeds("r_mix04", 2)),
            lever("learning rate 1e-3", REFIT, ("d_lr1e3_s0",), ("r_lr1e3_s0",)),
            lever("8 epochs", REFIT, ("def_e8",), ("real_e8",), no_face=False),
            ROBUST,
            lever("robust standardisation and window readout", REFIT, ("d_robro_s0",), ("r_robro_s0",)),
            lever("weight EMA, decay 0.99 (measured and removed)", REFIT, seeds("ema99", 2), seeds("ema99", 2), False),
        ],
    )
    # Logit adjustment by the train prior, its τ chosen on the holdout, on the reference's seed-0 refit.
    adjusted = [pick(sources, REFIT, p, (tag,))[0] for p, tag in zip(PROFILES, ("d_cw0_s0", "r_cw0_s0"), strict=True)]
    cells = [f"{f3(r['refit_val_tau_star'])} (τ {r['tau_star']}, seed 0)" for r in adjusted]
    rows.append(["logit adjustment, τ chosen on the holdout", *cells, "–", "–", "–", "–"])
    return markdown(LEVER_HEADER, rows)


@table("levers-experts")
def levers_experts(sources: Sources) -> str:
    levers = [
        ROBUST,
        WITH_EXPERTS,
        lever("experts and window readout", EXPERTS, seeds("experts_readout")),
        lever(
            "experts, weights chosen on the holdout (measured and removed)",
            EXPERTS,
            seeds("calibrated"),
            seeds("calibrated"),
        ),
    ]
    return markdown(LEVER_HEADER, lever_rows(sources, levers))


def weight_sweep(sources: Sources, expert: str, what: str) -> str:
    weights = EXPERT_WEIGHTS[expert]
    rows = []
    for profile in PROFILES:
        scores = [r[f"refit_{expert}_weights"] for r in pick(sources, EXPERTS, profile, WITH_EXPERTS.tags[profile])]
        if any(len(s) != len(weights) for s in scores):
            raise TableError(f"{EXPERTS}: refit_{expert}_weights do not match {weights}")
        rows.append([f"`{profile}`", *(f3(statistics.mean(column)) for column in zip(*scores, strict=True))])
    return markdown([f"{expert} weight ({what})", *(str(w) for w in weights)], rows)


@table("expert-weights")
def expert_weights(sources: Sources) -> str:
    return weight_sweep(sources, "joint", "validation") + "\n\n" + weight_sweep(sources, "audio", "every face hidden")


@table("expert-calibration")
def expert_calibration(sources: Sources) -> str:
    """The weights the holdout chose, run by run, and what they scored."""

    def row(file: str, profile: str, record: dict) -> list[str]:
        chosen = [f"{record['expert_weights'][expert]:g}" for expert in EXPERT_WEIGHTS]
        return [f"`{file}`", f"`{profile}`", seed_of(record), *chosen, *figures(record, ("refit_val", "refit_noface"))]

    header = ["probe", "corpus", "seed", "joint weight chosen", "audio weight chosen", "validation", "no face"]
    rows = [
        row(file, profile, record)
        for file, prefix in ((EXPERTS, "calibrated"), (AUTO, "cal"))
        for profile in PROFILES
        for record in pick(sources, file, profile, seeds(prefix))
    ]
    return markdown(header, rows)


@table("levers-pipeline-ablation")
def levers_pipeline_ablation(sources: Sources) -> str:
    """Around the pipeline's model on `realistic`: one lever changed per row (mean and range over seeds)."""

    def row(label: str, runs: list[dict], model: str = "refit", holdout: str | None = None) -> list[str]:
        return [
            label,
            spread([r[f"{model}_val"] for r in runs]),
            spread([r[f"{model}_noface"] for r in runs]),
            holdout or mean_or_dash([r["holdout"] for r in runs]),
        ]

    experts = pick(sources, EXPERTS, "realistic", WITH_EXPERTS.tags["realistic"])
    rows = [
        row("**the pipeline's model**", experts),
        row("no experts", pick(sources, REFIT, "realistic", ROBUST.tags["realistic"])),
        row("no refit (the selection run's model)", experts, model="sel"),
    ]
    for label, prefix in (
        ("ordinary standardisation (`global`)", "norm_global"),
        ("no standardisation (`none`)", "norm_none"),
        ("per-video normalisation (`video`)", "norm_video"),
        ("no auxiliary heads, dropout hides either modality (the paper's)", "aux0"),
        ("selection on the validation split", "sel_val"),
    ):
        runs = pick(sources, "lever_probe_ablation", "realistic", seeds(prefix))
        rows.append(row(label, runs, holdout="(validation)" if prefix == "sel_val" else None))
    return markdown(["row", "validation", "no face", "holdout"], rows)


@table("levers-auto")
def levers_auto(sources: Sources) -> str:
    levers = [
        lever("before: robust, joint expert trained by SGD, weight 2", EXPERTS, seeds("experts"), seeds("experts")),
        lever("**`auto` and the fitted joint expert** (joint 4, audio 8)", AUTO, seeds("auto"), seeds("auto")),
        lever("the same, weights chosen on the holdout (measured and removed)", AUTO, seeds("cal"), seeds("cal")),
    ]
    return markdown(LEVER_HEADER, lever_rows(sources, levers))


# --- benchmarks/ablation.py ---------------------------------------------------------------------------------------

ABLATION_ROWS = ("fusion", "visual", "audio", "p=0", "p=0.2", "d=512", "l=2", "l=4")


def rows_by_name(records: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for record in records:
        grouped.setdefault(record["row"], []).append(record)
    return grouped


@table("ablation")
def ablation(sources: Sources) -> str:
    """The paper's ablation: the median over each row's seeds."""
    grouped = rows_by_name(sources.records("ablation"))
    header = ["run", "seeds", "macro-F1", "accuracy", "F1 voting", "F1 single pass", "F1 @ 50 % faces missing"]
    rows = []
    keys = ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame", "missing_50")
    for name in ABLATION_ROWS:
        runs = grouped[name]
        scores = [f3(statistics.median(r[key] for r in runs)) for key in keys]
        minutes = statistics.median(r["seconds"] for r in runs) / 60
        rows.append([f"`{name}`", str(len(runs)), *scores, f"{minutes:.1f} min"])
    return markdown([*header, "train time"], rows)


LEVER_ROWS = ("fusion", "visual", "audio", "p=0", "norm=none", "norm=video", "aux=0.3", "drop=face", "cw=0.5")
LEVER_ROWS += ("wd=0.2", "sel=val")
LEVER_COLUMNS = (
    ("realistic, 12 ep", "ablation_realistic_12ep", "macro_f1"),
    ("realistic, 40 ep", "ablation_realistic_40ep", "macro_f1"),
    ("default, 12 ep", "ablation_default_12ep", "macro_f1"),
    ("default, 40 ep", "ablation_default_40ep", "macro_f1"),
    ("realistic, no face, 40 ep", "ablation_realistic_40ep", "missing_100"),
    ("default, no face, 40 ep", "ablation_default_40ep", "missing_100"),
)


@table("ablation-levers")
def ablation_levers(sources: Sources) -> str:
    """The real-feature levers on a GPU: median over seeds and range, per profile and schedule."""
    files = {file: rows_by_name(sources.records(file)) for _, file, _ in LEVER_COLUMNS}
    rows = [
        [f"`{name}`"]
        + [spread([r[key] for r in files[file].get(name, [])], statistics.median) for _, file, key in LEVER_COLUMNS]
        for name in LEVER_ROWS
    ]
    return markdown(["run", *(label for label, _, _ in LEVER_COLUMNS)], rows)


# --- make repro: benchmarks/repro_seeds.py and reports/evaluation.json ------------------------------------------------


def interval(block: dict, key: str) -> tuple[float, float] | None:
    """The ``[lo, hi]`` interval evaluate stores beside ``key`` (as ``<key>_ci``), if there is one."""
    value = block.get(f"{key}_ci")
    return (float(value[0]), float(value[1])) if value else None


def mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f3(values[0])
    return f"{f3(statistics.mean(values))} ± {f3(statistics.stdev(values))}"


NOT_MEASURED = "Not measured yet — run `python benchmarks/repro_seeds.py`."


def repro_runs(sources: Sources) -> dict[tuple[str, str], list[dict]] | None:
    """The runs of ``benchmarks/repro_seeds.py`` by (profile, commit), in the order first measured; None: no file."""
    if not (sources.results / "repro_seeds.jsonl").exists():
        return None
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in sources.records("repro_seeds"):
        groups.setdefault((record["profile"], record["commit"]), []).append(record)
    return {key: sorted(runs, key=lambda r: r["seed"]) for key, runs in groups.items()}


def repro_summary(runs: list[dict]) -> dict[str, str]:
    """Mean ± s.d. over seeds of the figures each run's evaluation report (``evaluation.json``) holds."""
    metrics = [r["metrics"] for r in runs]
    intervals = [span for span in (interval(m, "macro_f1") for m in metrics) if span]
    baselines = [m["baseline"] for m in metrics if "baseline" in m]
    dates = sorted({r["date"] for r in runs})
    return {
        "seeds": ", ".join(str(r["seed"]) for r in runs),
        "macro_f1": mean_sd([m["macro_f1"] for m in metrics]),
        "intervals": f"{f3(min(lo for lo, _ in intervals))}–{f3(max(hi for _, hi in intervals))}" if intervals else "–",
        "baseline": mean_or_dash([b["reference_macro_f1"] for b in baselines]),
        "margin": mean_sd([b["margin"] for b in baselines]),
        "floor": mean_sd([b["audio_floor_margin"] for b in baselines if "audio_floor_margin" in b]),
        "minutes": f"{statistics.mean(r['seconds'] for r in runs) / 60:.1f} min",
        "dates": dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}",
    }


@table("repro")
def repro(sources: Sources) -> str:
    """Per profile, `make repro` at the last commit measured, over its seeds (benchmarks/repro_seeds.py)."""
    groups = repro_runs(sources)
    if groups is None:
        return NOT_MEASURED
    latest = {profile: runs for (profile, _), runs in groups.items()}  # the last commit measured wins
    header = ["profile", "seeds", "macro-F1, mean ± s.d.", "95 % intervals of the runs", "baseline"]
    header += ["margin over the baseline", "every face hidden, margin over the audio baseline", "measured"]
    rows = []
    for profile, runs in latest.items():
        summary = repro_summary(runs)
        measured = f"{summary['dates']}, `{runs[0]['commit'][:7]}`, {runs[0]['cpu']}"
        rows.append(
            [f"`{profile}`"]
            + [summary[key] for key in ("seeds", "macro_f1", "intervals", "baseline", "margin", "floor")]
            + [measured]
        )
    return markdown(header, rows)


@table("repro-history")
def repro_history(sources: Sources) -> str:
    """Every commit `benchmarks/repro_seeds.py` measured, oldest first."""
    groups = repro_runs(sources)
    if groups is None:
        return NOT_MEASURED
    header = ["date", "commit", "profile", "seeds", "macro-F1, mean ± s.d.", "margin", "no-face margin"]
    header += ["`dvc repro evaluate`, per run", "CPU"]
    rows = []
    for (profile, commit), runs in groups.items():
        summary = repro_summary(runs)
        rows.append(
            [summary["dates"], f"`{commit[:7]}`", f"`{profile}`"]
            + [summary[key] for key in ("seeds", "macro_f1", "margin", "floor", "minutes")]
            + [runs[0]["cpu"]]
        )
    return markdown(header, rows)


@table("last-run", local=True)
def last_run(sources: Sources) -> str:
    """This machine's last `make repro` (reports/evaluation.json, the whole report), with its intervals."""
    path = sources.reports / "evaluation.json"
    if not path.exists():
        return "No `reports/evaluation.json` here yet: run `make repro`, then `make docs`."
    metrics = json.loads(path.read_text())

    def cell(value: float, span: list[float] | None) -> str:
        return f3(value) + (f" ({f3(span[0])}–{f3(span[1])})" if span else "")

    scores = (
        ("macro-F1 (voting + median filter)", "macro_f1"),
        ("accuracy", "accuracy"),
        ("macro-F1, voting alone", "macro_f1_voting"),
        ("macro-F1, single pass", "macro_f1_frame"),
    )
    rows = [
        [f"model, {label}", cell(metrics[key], metrics.get(f"{key}_ci"))] for label, key in scores if key in metrics
    ]
    hidden, hidden_ci = metrics.get("robustness", {}), metrics.get("robustness_ci", {})
    rows += [
        [f"model, {float(share) * 100:g} % of faces hidden", cell(score, hidden_ci.get(share))]
        for share, score in hidden.items()
    ]
    baseline = metrics.get("baseline", {})
    rows += [
        [f"baseline: {key.replace('_', ' ')}", cell(baseline[key], baseline.get(f"{key}_ci"))]
        for key in ("both", "visual", "audio", "margin", "audio_floor_margin")
        if key in baseline
    ]
    return markdown(["score (95 % interval where evaluated)", f"{metrics.get('split', 'validation')}"], rows)


# --- the files ----------------------------------------------------------------------------------------------------


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render_blocks(text: str, sources: Sources, skip_local: bool) -> tuple[str, list[str]]:
    """``text`` with each table block rendered anew, and the names of the blocks that changed."""
    opened = OPENING.findall(text)
    closed = {m.group("name") for m in MARKER.finditer(text)}
    if unclosed := [name for name in opened if name not in closed]:
        raise TableError(f"table marker opened and never closed: {', '.join(unclosed)}")
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise TableError(f"no table named {name!r} (known: {', '.join(sorted(TABLES))})")
        if skip_local and TABLES[name].local:
            return match.group(0)
        body = "\n" + TABLES[name].render(sources) + "\n\n"
        if body != match.group("body"):
            changed.append(name)
        return f"<!-- table:{name} -->\n{body}<!-- /table:{name} -->"

    return MARKER.sub(replace, text), changed


def run(root: Path, sources: Sources, check: bool) -> dict[Path, list[str]]:
    """Renders every table under ``root``; writes the documents unless ``check``. Returns the changed tables."""
    stale: dict[Path, list[str]] = {}
    for path in documents(root):
        text = path.read_text()
        new, changed = render_blocks(text, sources, skip_local=check)
        if changed:
            stale[path] = changed
            if not check:
                path.write_text(new)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (README.md and docs/)")
    args = parser.parse_args(argv)
    sources = Sources(args.root / "benchmarks" / "results", args.root / "reports")
    try:
        stale = run(args.root, sources, check=args.check)
    except (TableError, OSError, KeyError, ValueError) as error:
        print(f"generate_tables: {error}", file=sys.stderr)
        return 2
    for path, names in stale.items():
        verb = "stale" if args.check else "rewritten"
        print(f"{path.relative_to(args.root)}: {verb}: {', '.join(names)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
