"""DVC stage `corpus`: build the corpus from params.yaml's `data` section."""

from exprfusion.core.params import load_section
from exprfusion.core.progress import console, progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.sources.build_corpus import build_corpus
from exprfusion.sources.params import DataParams


def main() -> None:
    """Read the `data` params and build the corpus."""
    params = load_section("data", DataParams)
    with progress_callback(f"corpus ({params.source})") as update:
        build_corpus(params, progress=update, notify=console.print)


if __name__ == "__main__":
    run_stage(main)
