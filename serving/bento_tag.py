"""Print the tag of the Bento the package stage built (``models/package/bento.json``), for ``make serve``.

A machine whose BentoML store lacks it (a fresh clone with the DVC outputs pulled) rebuilds it first, with the same
tag, from the package and this checkout's code.
"""

from pathlib import Path

from exprfusion.core.stage_runner import run_stage
from exprfusion.tracking.packaging import ensure_bento

SOURCE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = SOURCE_ROOT / "models" / "package"
BENTOFILE = SOURCE_ROOT / "serving" / "bentofile.yaml"


def main() -> None:
    """Print the Bento tag (nothing else goes to standard output)."""
    print(ensure_bento(PACKAGE, BENTOFILE, SOURCE_ROOT))


if __name__ == "__main__":
    run_stage(main)
