"""Writes the result tables of README.md and docs/ from the files that hold the figures.

A table sits between two marker comments, each a line of its own, and everything between them is this script's
output:

    <!-- table:ablation -->
    ...
    <!-- /table:ablation -->

Each table is a function below, registered under its marker's name, that reads its files and returns Markdown. The
figures come from ``benchmarks/results/*.jsonl`` (committed: one JSON line per run of a benchmark) and, for the
``last-run`` table, from ``reports/metrics.json`` (the pipeline's output on this machine, not committed). What a
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


@dataclass(frozen=True)
class Lever:
    """One row of a lever table: its label and, per profile, the file and tags of its runs (one per seed)."""

    label: str
    file: str
    tags: dict[str, tuple[str, ...]]
    no_face: bool = True  # False: the runs predate the audio head, so their no-face figure is not comparable


def seeds(prefix: str, n: int = 3) -> tuple[str, ...]:
    return tuple(f"{prefix}_s{seed}" for seed in range(n))


def lever_table(sources: Sources, levers: list[Lever], profiles: tuple[str, ...]) -> str:
    """Per lever: validation macro-F1 (mean and range over seeds), then the means with every face hidden and on the
    training holdout, for each profile."""
    header = ["run"] + [f"`{p}`" for p in profiles]
    header += [f"`{p}`, no face" for p in profiles] + [f"`{p}`, holdout" for p in profiles]
    rows = []
    for lever in levers:
        runs = {p: pick(sources, lever.file, p, lever.tags[p]) if p in lever.tags else [] for p in profiles}
        row = [lever.label] + [spread([r["refit_val"] for r in runs[p]]) for p in profiles]
        row += [mean_or_dash([r["refit_noface"] for r in runs[p]] if lever.no_face else []) for p in profiles]
        row += [mean_or_dash([r["holdout"] for r in runs[p]]) for p in profiles]
        rows.append(row)
    return markdown(header, rows)


def overrides(record: dict) -> str:
    """The settings a probe changed (seed apart), as ``key=value``; none: the probe's own settings."""
    changed = {**record["model"], **{k: v for k, v in record["train"].items() if k != "seed"}}
    return ", ".join(f"`{key}={value}`" for key, value in changed.items()) or "the probe's settings"


@table("levers-repro-scale")
def levers_repro_scale(sources: Sources) -> str:
    header = ["settings changed", "corpus", "seed", "holdout", "validation", "no face", "validation, τ = 0.5"]
    rows = [
        [
            overrides(r),
            f"`{profile_of(r)}`",
            str(r["train"].get("seed", 0)),
            f3(r["holdout"]),
            f3(r["val_tau0.0"]),
            f3(r["no_face_tau0.0"]),
            f3(r["val_tau0.5"]),
        ]
        for r in sources.records("lever_probe_repro_scale")
    ]
    return markdown(header, rows)


REFIT_SEEDS = {"default": seeds("def"), "realistic": seeds("real")}


@table("levers-refit-seeds")
def levers_refit_seeds(sources: Sources) -> str:
    header = ["corpus", "seed", "holdout (selection)", "selection run's model", "**refit**", "refit, no face"]
    header += ["refit, no face, audio head"]
    rows = []
    for profile, tags in REFIT_SEEDS.items():
        for record in pick(sources, "lever_probe_refit", profile, tags):
            rows.append(
                [f"`{profile}`", str(record["train"].get("seed", 0))]
                + [f3(record[key]) for key in ("holdout", "sel_val")]
                + [f"**{f3(record['refit_val'])}**", f3(record["refit_noface"]), f3(record["refit_noface_audio_head"])]
            )
    return markdown(header, rows)


def refit_lever(label: str, default: tuple[str, ...], realistic: tuple[str, ...], no_face: bool = True) -> Lever:
    tags = {p: t for p, t in (("default", default), ("realistic", realistic)) if t}
    return Lever(label, "lever_probe_refit", tags, no_face)


ROBUST = refit_lever(
    "robust standardisation", ("d_rob_s0", "d_rob_s1", "d_robp_s2"), ("r_rob_s0", "r_rob_s1", "r_robp_s2")
)


@table("levers-refit")
def levers_refit(sources: Sources) -> str:
    levers = [
        refit_lever("reference (the refit)", REFIT_SEEDS["default"], REFIT_SEEDS["realistic"]),
        refit_lever("window readout", seeds("d_ro0", 2), seeds("r_ro0")),
        refit_lever("window readout, readout dropout 0.5", seeds("d_ro05", 2), seeds("r_ro05")),
        refit_lever("class weights, power 0.5", seeds("d_cw05", 2), seeds("r_cw05", 2)),
        refit_lever("class weights, power 1", ("d_cw1_s0",), ("r_cw1_s0",)),
        refit_lever("focal γ 0 (cross-entropy)", seeds("d_g0", 2), seeds("r_g0", 2)),
        refit_lever("mixup over windows, α 0.4 (measured and removed)", seeds("d_mix04", 2), seeds("r_mix04", 2)),
        refit_lever("learning rate 1e-3", ("d_lr1e3_s0",), ("r_lr1e3_s0",)),
        refit_lever("8 epochs", ("def_e8",), ("real_e8",), no_face=False),
        ROBUST,
        refit_lever("robust standardisation and window readout", ("d_robro_s0",), ("r_robro_s0",)),
        refit_lever("weight EMA, decay 0.99 (measured and removed)", seeds("ema99", 2), seeds("ema99", 2), False),
    ]
    table_text = lever_table(sources, levers, ("default", "realistic"))
    # Logit adjustment by the train prior, its τ chosen on the holdout, on the reference's seed-0 refit.
    cells = []
    for profile, tag in (("default", "d_cw0_s0"), ("realistic", "r_cw0_s0")):
        (record,) = pick(sources, "lever_probe_refit", profile, (tag,))
        cells.append(f"{f3(record['refit_val_tau_star'])} (τ {record['tau_star']}, seed 0)")
    return (
        table_text + "\n" + "| logit adjustment, τ chosen on the holdout | " + " | ".join(cells) + " | – | – | – | – |"
    )


def experts_lever(label: str, default: tuple[str, ...], realistic: tuple[str, ...], file: str) -> Lever:
    return Lever(label, file, {p: t for p, t in (("default", default), ("realistic", realistic)) if t})


@table("levers-experts")
def levers_experts(sources: Sources) -> str:
    levers = [
        ROBUST,
        experts_lever(
            "**experts** (joint weight 2, audio weight 8)", seeds("experts"), seeds("experts"), "lever_probe_experts"
        ),
        experts_lever("experts and window readout", seeds("experts_readout"), (), "lever_probe_experts"),
        experts_lever(
            "experts, weights chosen on the holdout (measured and removed)",
            seeds("calibrated"),
            seeds("calibrated"),
            "lever_probe_experts",
        ),
    ]
    return lever_table(sources, levers, ("default", "realistic"))


def weight_sweep(sources: Sources, expert: str, what: str) -> str:
    weights = EXPERT_WEIGHTS[expert]
    header = [f"{expert} weight ({what})"] + [str(w) for w in weights]
    rows = []
    for profile in ("default", "realistic"):
        runs = pick(sources, "lever_probe_experts", profile, seeds("experts"))
        scores = [record[f"refit_{expert}_weights"] for record in runs]
        if any(len(s) != len(weights) for s in scores):
            raise TableError(f"lever_probe_experts: refit_{expert}_weights do not match {weights}")
        rows.append([f"`{profile}`"] + [f3(statistics.mean(column)) for column in zip(*scores, strict=True)])
    return markdown(header, rows)


@table("expert-weights")
def expert_weights(sources: Sources) -> str:
    return weight_sweep(sources, "joint", "validation") + "\n\n" + weight_sweep(sources, "audio", "every face hidden")


@table("expert-calibration")
def expert_calibration(sources: Sources) -> str:
    """The weights the holdout chose, run by run, and what they scored."""
    header = ["probe", "corpus", "seed", "joint weight chosen", "audio weight chosen", "validation", "no face"]
    rows = []
    for file, prefix in (("lever_probe_experts", "calibrated"), ("lever_probe_auto", "cal")):
        for profile in ("default", "realistic"):
            for record in pick(sources, file, profile, seeds(prefix)):
                chosen = record["expert_weights"]
                rows.append(
                    [
                        f"`{file}`",
                        f"`{profile}`",
                        str(record["train"].get("seed", 0)),
                        f"{chosen['joint']:g}",
                        f"{chosen['audio']:g}",
                        f3(record["refit_val"]),
                        f3(record["refit_noface"]),
                    ]
                )
    return markdown(header, rows)


@table("levers-pipeline-ablation")
def levers_pipeline_ablation(sources: Sources) -> str:
    """Around the pipeline's model on `realistic`: one lever changed per row."""
    experts = pick(sources, "lever_probe_experts", "realistic", seeds("experts"))
    rows = [
        [
            "**the pipeline's model**",
            spread([r["refit_val"] for r in experts]),
            spread([r["refit_noface"] for r in experts]),
            mean_or_dash([r["holdout"] for r in experts]),
        ],
    ]
    robust = pick(sources, "lever_probe_refit", "realistic", ROBUST.tags["realistic"])
    rows.append(
        [
            "no experts",
            spread([r["refit_val"] for r in robust]),
            spread([r["refit_noface"] for r in robust]),
            mean_or_dash([r["holdout"] for r in robust]),
        ]
    )
    rows.append(
        [
            "no refit (the selection run's model)",
            spread([r["sel_val"] for r in experts]),
            spread([r["sel_noface"] for r in experts]),
            mean_or_dash([r["holdout"] for r in experts]),
        ]
    )
    for label, prefix in (
        ("ordinary standardisation (`global`)", "norm_global"),
        ("no standardisation (`none`)", "norm_none"),
        ("per-video normalisation (`video`)", "norm_video"),
        ("no auxiliary heads, dropout hides either modality (the paper's)", "aux0"),
        ("selection on the validation split", "sel_val"),
    ):
        runs = pick(sources, "lever_probe_ablation", "realistic", seeds(prefix))
        holdout = "(validation)" if prefix == "sel_val" else mean_or_dash([r["holdout"] for r in runs])
        rows.append([label, spread([r["refit_val"] for r in runs]), spread([r["refit_noface"] for r in runs]), holdout])
    return markdown(["row", "validation", "no face", "holdout"], rows)


@table("levers-auto")
def levers_auto(sources: Sources) -> str:
    levers = [
        experts_lever(
            "before: robust, joint expert trained by SGD, weight 2",
            seeds("experts"),
            seeds("experts"),
            "lever_probe_experts",
        ),
        Lever(
            "**`auto` and the fitted joint expert** (joint 4, audio 8)",
            "lever_probe_auto",
            {"default": seeds("auto"), "realistic": seeds("auto")},
        ),
        Lever(
            "the same, weights chosen on the holdout (measured and removed)",
            "lever_probe_auto",
            {"default": seeds("cal"), "realistic": seeds("cal")},
        ),
    ]
    return lever_table(sources, levers, ("default", "realistic"))


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
    header += ["train time"]
    rows = []
    for name in ABLATION_ROWS:
        runs = grouped[name]

        def median(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        rows.append(
            [f"`{name}`", str(len(runs))]
            + [f3(median(k)) for k in ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame", "missing_50")]
            + [f"{median('seconds') / 60:.1f} min"]
        )
    return markdown(header, rows)


LEVER_ROWS = (
    "fusion",
    "visual",
    "audio",
    "p=0",
    "norm=none",
    "norm=video",
    "aux=0.3",
    "drop=face",
    "cw=0.5",
    "wd=0.2",
    "sel=val",
)
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
    rows = []
    for name in LEVER_ROWS:
        cells = [
            spread([r[key] for r in files[file].get(name, [])], statistics.median) for _, file, key in LEVER_COLUMNS
        ]
        rows.append([f"`{name}`", *cells])
    return markdown(["run", *(label for label, _, _ in LEVER_COLUMNS)], rows)


# --- make repro: benchmarks/repro_seeds.py and reports/metrics.json ------------------------------------------------


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
    """Mean ± s.d. over seeds of the figures each run's ``metrics.json`` holds."""
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
    """This machine's last `make repro` (reports/metrics.json), with its intervals when evaluate wrote them."""
    path = sources.reports / "metrics.json"
    if not path.exists():
        return "No `reports/metrics.json` here yet: run `make repro`, then `make docs`."
    metrics = json.loads(path.read_text())

    def cell(block: dict, key: str) -> str:
        span = interval(block, key)
        return f3(block[key]) + (f" ({f3(span[0])}–{f3(span[1])})" if span else "")

    rows = [
        [f"model, {label}", cell(metrics, key)]
        for label, key in (
            ("macro-F1 (voting + median filter)", "macro_f1"),
            ("accuracy", "accuracy"),
            ("macro-F1, voting alone", "macro_f1_voting"),
            ("macro-F1, single pass", "macro_f1_frame"),
        )
        if key in metrics
    ]
    robustness, robustness_ci = metrics.get("robustness", {}), metrics.get("robustness_ci", {})
    for fraction, score in robustness.items():
        span = robustness_ci.get(fraction)
        rows.append(
            [
                f"model, {float(fraction) * 100:g} % of faces hidden",
                f3(score) + (f" ({f3(span[0])}–{f3(span[1])})" if span else ""),
            ]
        )
    baseline = metrics.get("baseline", {})
    for key in ("both", "visual", "audio", "margin", "audio_floor_margin"):
        if key in baseline:
            rows.append([f"baseline: {key.replace('_', ' ')}", cell(baseline, key)])
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
