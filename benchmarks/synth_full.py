"""Time the synthetic corpus generator at Aff-Wild2 scale: wall time, peak memory, frames per second.

python benchmarks/synth_full.py                    # the `full` profile into a temporary folder, then delete it
python benchmarks/synth_full.py --profile default --workers 2 --out /tmp/corpus --keep
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from exprfusion.data.corpus import Corpus
from exprfusion.sources.synthetic import PROFILES, generate_corpus


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its finished children, in MiB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def folder_size_gib(root: Path) -> float:
    """Total size of the files under ``root``, in GiB."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) / 2**30


def main(argv: list[str] | None = None) -> int:
    """Generate a corpus, print the figures, and remove it unless asked to keep it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    parser.add_argument("--out", type=Path, default=None, help="corpus folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes rendering features (default: auto)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus")
    args = parser.parse_args(argv)

    scratch = None if args.out else Path(tempfile.mkdtemp(prefix="synth-bench-"))
    out = args.out or scratch / "corpus"
    try:
        start = time.perf_counter()
        generate_corpus(out, args.profile, args.seed, workers=args.workers, overwrite=True)
        seconds = time.perf_counter() - start
        manifest = Corpus(out).manifest
        frames, labelled = int(manifest["n_frames"].sum()), int(manifest["n_labelled"].sum())
        own, children = peak_rss_mib()
        print(f"profile={args.profile} seed={args.seed} workers={args.workers or 'auto'} out={out}")
        print(f"videos={len(manifest)} frames={frames} labelled={labelled} size={folder_size_gib(out):.2f} GiB")
        print(f"wall={seconds:.1f} s  frames/s={frames / seconds:,.0f}")
        print(f"peak RSS: self={own:.0f} MiB children={children:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(scratch or out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
