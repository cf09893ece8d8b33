"""DVC stage `corpus`: build the corpus from params.yaml's `data` section."""

from exprfusion.build_corpus import build_corpus
from exprfusion.params import load_section
from exprfusion.progress import console, progress_callback
from exprfusion.stage import run_stage


def main() -> None:
    """Read the `data` params and build the corpus."""
    params = load_section("data")
    with progress_callback(f"corpus ({params['source']})") as update:
        build_corpus(params, progress=update, notify=console.print)


if __name__ == "__main__":
    run_stage(main)
