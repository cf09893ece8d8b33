"""The model as MLflow serves it: a pyfunc over the project's artefact file, its signature and an input example.

:func:`exprfusion.tracking.registry.log_and_register` logs :class:`ExpressionModel` with ``artifacts={"model":
<file>}``: the
file DVC versions is the file MLflow stores, and ``mlflow.pyfunc.load_model`` labels a video's frames exactly as
``exprfusion predict`` does.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.corpus import Corpus
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model

EXAMPLE_FRAMES = 8


class ExpressionModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc over the model artefact: one video's frames in, one expression label per frame out.

    Input: a DataFrame with one row per frame and columns ``visual`` (list of Dv floats), ``audio`` (list of Da
    floats), ``face_mask`` and ``audio_mask`` (bools). Output: ``label`` (0..7) and ``expression`` (class name),
    after window voting and the median filter, exactly as ``exprfusion predict`` labels a video.
    """

    def load_context(self, context: Any) -> None:
        """Load the artefact stored with the logged model."""
        self.model, self.inference, _ = load_model(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Label every frame of the video in ``model_input``."""
        labels, _ = predict_video(
            self.model,
            self.inference,
            np.stack(model_input["visual"].to_numpy()).astype(np.float32),
            np.stack(model_input["audio"].to_numpy()).astype(np.float32),
            model_input["face_mask"].to_numpy(dtype=bool),
            model_input["audio_mask"].to_numpy(dtype=bool),
        )
        return pd.DataFrame({"label": labels.astype(np.int64), "expression": np.asarray(CLASS_NAMES)[labels]})


def pyfunc_signature() -> ModelSignature:
    """The frame-table signature of :class:`ExpressionModel` (double arrays, so JSON payloads convert safely)."""
    inputs = Schema(
        [
            ColSpec(Array(DataType.double), "visual"),
            ColSpec(Array(DataType.double), "audio"),
            ColSpec(DataType.boolean, "face_mask"),
            ColSpec(DataType.boolean, "audio_mask"),
        ]
    )
    return ModelSignature(
        inputs=inputs, outputs=Schema([ColSpec(DataType.long, "label"), ColSpec(DataType.string, "expression")])
    )


def frames_table(corpus: Corpus, video: str | None = None, n_frames: int = EXAMPLE_FRAMES) -> pd.DataFrame:
    """The first ``n_frames`` frames of a corpus video (default: the first validation video) as pyfunc input."""
    video = video or (corpus.videos("validation") or corpus.videos())[0]
    record = corpus.load(video)
    rows = slice(0, min(n_frames, record.n_frames))
    return pd.DataFrame(
        {
            "visual": list(np.asarray(record.visual[rows], dtype=np.float64)),
            "audio": list(np.asarray(record.audio[rows], dtype=np.float64)),
            "face_mask": np.asarray(record.face_mask[rows], dtype=bool),
            "audio_mask": np.asarray(record.audio_mask[rows], dtype=bool),
        }
    )
