"""The Great Expectations suite a corpus must pass, run on its per-video statistics (one row per video).

The table comes from :func:`exprfusion.data.corpus_statistics.video_statistics`; GX sees one row per video, never frame
rows.
Each expectation carries a description (the name a failure is reported under) and every failed row is reported by
its video. GX is imported inside :func:`run_corpus_suite` only: importing it takes seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from exprfusion.data.corpus import COUNT_COLUMNS

SUITE_NAME = "corpus_videos"
# A column shown beside the failing values of an expectation on the first column (where it says more).
_SHOWN_WITH = {
    "missing_files": "file_errors",
    "unreadable_files": "file_errors",
    "hash_matches": "file_errors",
    "label_max": "file_errors",
    "label_min": "file_errors",
    "nonfinite_visual_rows": "first_nonfinite_row",
    "nonfinite_audio_rows": "first_nonfinite_row",
}


@dataclass
class ExpectationOutcome:
    """One expectation's result.

    Attributes:
        description: what the corpus must satisfy, e.g. ``"annotation length equals feature length"``.
        expectation: the GX expectation type, e.g. ``"expect_column_pair_values_to_be_equal"``.
        columns: the statistics columns it reads.
        success: whether every row (or the aggregate) passed.
        failed: per failing video, the values that failed, e.g. ``{"t1": "annotation_rows=59, visual_rows=60"}``.
        observed: for an aggregate expectation (a sum, a set of values), the value GX observed.
    """

    description: str
    expectation: str
    columns: list[str]
    success: bool
    failed: dict[str, str] = field(default_factory=dict)
    observed: str = ""


def _suite_expectations(
    stats: pd.DataFrame,
    *,
    required_splits: Sequence[str],
    face_rate_bounds: tuple[float, float],
    min_class_frames: int,
    check_hashes: bool,
) -> list[Any]:
    """The expectations, each with the description it is reported under."""
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    expect = gx.expectations
    annotated = Column("split") != "test"

    def zero(column: str, description: str) -> Any:
        return expect.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=0, description=description)

    suite = [
        zero("missing_files", "every file of the video exists"),
        zero("unreadable_files", "every file of the video is readable"),
    ]
    for kind in ("visual", "audio", "face_mask", "audio_mask"):
        suite.append(
            expect.ExpectColumnPairValuesToBeEqual(
                column_A=f"{kind}_rows",
                column_B="manifest_frames",
                description=f"{kind} rows equal the manifest's frame count",
            )
        )
    suite.append(
        expect.ExpectColumnPairValuesToBeEqual(
            column_A="annotation_rows",
            column_B="visual_rows",
            row_condition=annotated,
            description="annotation length equals feature length",
        )
    )
    for kind in ("visual", "audio"):
        # The width most manifest rows give is the corpus's; a video that differs is the odd one out.
        usual = int(stats[f"manifest_{kind}_dim"].mode().iloc[0]) if len(stats) else 0
        suite += [
            expect.ExpectColumnValuesToBeInSet(
                column=f"{kind}_width", value_set=[usual], description=f"{kind} feature width is the corpus's ({usual})"
            ),
            expect.ExpectColumnPairValuesToBeEqual(
                column_A=f"{kind}_width",
                column_B=f"manifest_{kind}_dim",
                description=f"{kind} feature width equals the manifest's",
            ),
        ]
    suite += [
        zero("nonfinite_visual_rows", "visual features are finite"),
        zero("nonfinite_audio_rows", "audio features are finite"),
    ]
    label_range = f"labels lie in {IGNORE_LABEL}..{NUM_CLASSES - 1}"
    for column in ("label_min", "label_max"):
        suite.append(
            expect.ExpectColumnValuesToBeBetween(
                column=column, min_value=IGNORE_LABEL, max_value=NUM_CLASSES - 1, description=label_range
            )
        )
    low, high = face_rate_bounds
    suite.append(
        expect.ExpectColumnValuesToBeBetween(
            column="face_rate", min_value=low, max_value=high, description=f"face rate lies in [{low}, {high}]"
        )
    )
    suite.append(
        expect.ExpectColumnDistinctValuesToContainSet(
            column="split", value_set=list(required_splits), description="every required split has videos"
        )
    )
    for split in required_splits:
        if split != "test":
            suite.append(
                expect.ExpectColumnSumToBeBetween(
                    column="n_labelled",
                    min_value=1,
                    row_condition=Column("split") == split,
                    description=f"split {split} has labelled frames",
                )
            )
    for name, column in zip(CLASS_NAMES, COUNT_COLUMNS, strict=True):
        if min_class_frames > 0:
            suite.append(
                expect.ExpectColumnSumToBeBetween(
                    column=column,
                    min_value=min_class_frames,
                    row_condition=Column("split") == "train",
                    description=f"every class is present in train ({name}: ≥ {min_class_frames} frames)",
                )
            )
    suite += [
        expect.ExpectColumnValuesToBeBetween(
            column="n_splits", min_value=1, max_value=1, description="no video is in two splits"
        ),
        expect.ExpectColumnValuesToBeUnique(column="video", description="each video is listed once"),
        expect.ExpectColumnValuesToBeUnique(column="sha256", description="no two videos have the same content hash"),
    ]
    if check_hashes:
        suite.append(
            expect.ExpectColumnValuesToBeInSet(
                column="hash_matches", value_set=[True], description="content hash matches the manifest"
            )
        )
    return suite


def run_corpus_suite(
    stats: pd.DataFrame,
    *,
    required_splits: Sequence[str],
    face_rate_bounds: tuple[float, float],
    min_class_frames: int,
    check_hashes: bool,
    data_docs: str | os.PathLike[str] | None = None,
) -> list[ExpectationOutcome]:
    """Validate the per-video statistics with GX and, if asked, build the HTML data docs.

    Args:
        stats: one row per video (:func:`exprfusion.data.corpus_statistics.video_statistics`).
        required_splits: splits that must have videos (and labelled frames, except ``test``).
        face_rate_bounds: ``(low, high)`` each video's share of frames with a face must lie in.
        min_class_frames: labelled train frames every class must have (0: no such expectation).
        check_hashes: expect ``hash_matches`` to be True (the hashes were recomputed).
        data_docs: folder to (re)write the data docs site into (``index.html``); None: no docs.

    Returns:
        One outcome per expectation, in suite order.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("corpus")
        .add_dataframe_asset("videos")
        .add_batch_definition_whole_dataframe("per-video statistics")
    )
    expectations = _suite_expectations(
        stats,
        required_splits=required_splits,
        face_rate_bounds=face_rate_bounds,
        min_class_frames=min_class_frames,
        check_hashes=check_hashes,
    )
    # One store write for the whole suite (adding expectations one by one re-serialises the suite each time).
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": stats},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["video"]},
    )
    if data_docs is not None:
        _build_data_docs(context, Path(data_docs))
    # The values shown beside a failure, per video (a video listed twice shows its first row's).
    by_video = stats.drop_duplicates("video").set_index("video").to_dict("index")
    return [_outcome(item, by_video) for item in result.results]


def _build_data_docs(context: Any, target: Path) -> None:
    """Build the data docs into a sibling folder, then swap it in: the old site stays whole until the new one is."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)).resolve()  # GX wants it absolute
    try:
        site = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        context.add_data_docs_site(site_name="corpus", site_config=site)
        context.build_data_docs(site_names=["corpus"])
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _outcome(item: Any, by_video: dict[str, dict[str, Any]]) -> ExpectationOutcome:
    """An ExpectationOutcome from one GX ExpectationValidationResult (``by_video``: each video's statistics)."""
    config = item.expectation_config
    kwargs = config.kwargs
    columns = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
    outcome = ExpectationOutcome(
        description=config.description or config.type, expectation=config.type, columns=columns, success=item.success
    )
    if item.success:
        return outcome
    rows = item.result.get("unexpected_index_list")
    if not rows:  # an aggregate: a sum over a split, the set of splits
        outcome.observed = _show(item.result.get("observed_value"))
        return outcome
    for row in rows:
        video = str(row["video"])
        shown = [f"{column}={_show(row[column])}" for column in columns if column in row and column != "video"]
        extra = _SHOWN_WITH.get(columns[0]) if columns else None
        value = by_video.get(video, {}).get(extra)
        if extra and value not in (None, "", -1):
            shown.append(f"{extra}={_show(value)}" if extra != "file_errors" else str(value))
        outcome.failed.setdefault(video, ", ".join(shown))
    return outcome


def _show(value: Any) -> str:
    """A value for a message: numbers as they are, long strings (hashes) shortened."""
    if hasattr(value, "item"):
        value = value.item()
    text = str(value)
    return text if len(text) <= 20 else text[:12] + "…"
