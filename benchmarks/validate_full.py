"""Time the corpus validation (GX suite on per-video statistics) on the Aff-Wild2-scale `full` synthetic corpus.

python benchmarks/validate_full.py                               # generates /tmp/exprfusion-validate-full once
python benchmarks/validate_full.py --corpus data/corpus --repeats 5

Prints the median over repeats of:
- ``validate``: ``validate_corpus`` in this process (statistics pass, hashes, GX suite, data docs, report);
- ``command``: ``exprfusion validate`` as a fresh process (Python start and the GX import included): the figure the
  stage costs;
- ``reference``: the check the stage ran before GX, measured in the same run: every video loaded memory-mapped and its
  shapes compared with the manifest, then every content hash recomputed (``Corpus.load`` + ``Corpus.verify``).
The page cache is warm for all three (each reads the corpus once before timing).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from exprfusion.data.corpus import MANIFEST_NAME, Corpus
from exprfusion.data.corpus_checks import validate_corpus
from exprfusion.sources.synthetic import generate_corpus

DEFAULT_CORPUS = Path(tempfile.gettempdir()) / "exprfusion-validate-full" / "corpus"


def reference_check(root: Path) -> int:
    """The pre-GX check: shapes of every video against the manifest, then every content hash; returns problems."""
    corpus = Corpus(root)
    problems = 0
    for video in corpus.videos():
        record = corpus.load(video)
        row = corpus.manifest.loc[video]
        problems += record.visual.shape != (row["n_frames"], row["visual_dim"])
        problems += record.audio.shape != (row["n_frames"], row["audio_dim"])
    return problems + len(corpus.verify())


def median_seconds(work: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median and all wall times of ``repeats`` calls of ``work``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    """Generate the corpus if needed, then time the new validation, the command and the reference."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder (generated if absent)")
    parser.add_argument("--profile", default="full", help="profile to generate when the corpus is absent")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    if not (args.corpus / MANIFEST_NAME).is_file():
        start = time.perf_counter()
        generate_corpus(args.corpus, profile=args.profile, seed=0, overwrite=True)
        print(f"generated {args.corpus} ({args.profile}) in {time.perf_counter() - start:.0f} s")
    manifest = Corpus(args.corpus).manifest
    size = sum(path.stat().st_size for path in args.corpus.rglob("*") if path.is_file()) / 2**30
    print(f"corpus={args.corpus} videos={len(manifest)} frames={int(manifest['n_frames'].sum())} size={size:.2f} GiB")

    out = Path(tempfile.mkdtemp(prefix="validate-bench-"))
    reference_check(args.corpus)  # warm the page cache

    start = time.perf_counter()
    import great_expectations  # noqa: F401  (timed once: the first validate_corpus call pays it otherwise)

    gx_import = time.perf_counter() - start

    def validate() -> None:
        validate_corpus(args.corpus, out / "validation.json", data_docs=out / "data_docs")

    def command() -> None:
        subprocess.run(
            [sys.executable, "-m", "exprfusion", "validate", str(args.corpus), "--data-docs", str(out / "docs2")],
            check=True,
            capture_output=True,
        )

    try:
        new, new_all = median_seconds(validate, args.repeats)
        fresh, fresh_all = median_seconds(command, args.repeats)
        old, old_all = median_seconds(lambda: reference_check(args.corpus), args.repeats)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    show = ", ".join
    print(f"GX import (once per process): {gx_import:.1f} s")
    print(f"validate  (in process):  median {new:.1f} s  [{show(f'{t:.1f}' for t in new_all)}]")
    print(f"command   (fresh process): median {fresh:.1f} s  [{show(f'{t:.1f}' for t in fresh_all)}]")
    print(f"reference (pre-GX check):  median {old:.1f} s  [{show(f'{t:.1f}' for t in old_all)}]")
    print(f"ratio validate / reference = {new / old:.2f}; command / reference = {fresh / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
