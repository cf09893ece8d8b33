"""DVC stage `validate`: check the corpus (splits, feature widths, content hashes) and write reports/validation.json."""

from exprfusion.corpus_checks import check_corpus
from exprfusion.params import load_section
from exprfusion.stage import run_stage

REPORT = "reports/validation.json"


def main() -> None:
    """Read the `validate` params and check the corpus; a failing check exits non-zero naming the videos."""
    params = load_section("validate")
    report = check_corpus(
        load_section("data")["out"],
        REPORT,
        required_splits=params["required_splits"],
        verify_hashes=params["verify_hashes"],
    )
    print(f"corpus ok: {report['n_videos']} videos, hash {report['corpus_hash'][:12]}; wrote {REPORT}")


if __name__ == "__main__":
    run_stage(main)
