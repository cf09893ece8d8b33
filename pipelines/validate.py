"""DVC stage `validate`: run the corpus expectations; write reports/validation.json and the data docs."""

from exprfusion.core.params import corpus_folder, load_section
from exprfusion.core.progress import progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.data.corpus_checks import ValidationSettings, validate_corpus

REPORT = "reports/validation.json"
DATA_DOCS = "reports/data_docs"


def main() -> None:
    """Read the `validate` params and check the corpus; a failing check exits non-zero naming the videos."""
    settings = load_section("validate", ValidationSettings)
    with progress_callback("validate") as update:
        report = validate_corpus(corpus_folder(), REPORT, data_docs=DATA_DOCS, settings=settings, progress=update)
    print(f"corpus ok: {report['n_videos']} videos, hash {report['corpus_hash'][:12]}; wrote {REPORT}, {DATA_DOCS}")


if __name__ == "__main__":
    run_stage(main)
