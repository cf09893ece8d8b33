"""A Bento of a small randomly initialised model, built in a child process (so no test process fixes BentoML's home).

For tests of how the service runs (workers, metrics, which code a Bento runs) rather than what it predicts: the
model needs no training, only fixed weights, so every test can compare the service's labels with the same model's
labels in process.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
WIDTHS = (16, 12)

_BUILD = """
import sys
from pathlib import Path
import torch
from exprfusion.model.artifact import save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.tracking.packaging import build_bento, package_model
from exprfusion.training.train_config import TrainConfig

workdir, source = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
config = FusionConfig(visual_dim=16, audio_dim=12, d_model=16, n_heads=2, normalisation="robust")
model = FusionTransformer(config).eval()
for parameter in model.parameters():  # the experts start at zero: give every weight a say
    torch.nn.init.normal_(parameter, std=0.3)
path = save_model(workdir / "model.pt", model, TrainConfig().inference(), {"note": "random weights (test)"})
package_model(path, workdir / "package", metrics={}, smoke_frames=64)
print(build_bento(workdir / "package", source / "serving" / "bentofile.yaml", source).bento_tag)
"""


def bento_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment with BentoML's home at ``home``, the request log beside it, and ``settings``
    (``EXPRFUSION_*`` variables)."""
    log = str(home.parent / "logs" / "requests.jsonl")
    return {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "EXPRFUSION_REQUEST_LOG": log,
    } | settings


def build_random_bento(workdir: Path, env: Mapping[str, str], source: Path = REPOSITORY) -> str:
    """Save the random model at ``workdir/model.pt``, package it and build its Bento from ``source``'s ``serving/``
    and ``src/`` into ``env``'s BentoML home; return the Bento tag."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, str(workdir), str(source)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()[-1]


def video(frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random features of the random model's widths, some faces missing."""
    rng = np.random.default_rng(seed)
    face_mask = rng.random(frames) > 0.2
    return {
        "visual": rng.standard_normal((frames, WIDTHS[0])).astype(np.float32),
        "audio": rng.standard_normal((frames, WIDTHS[1])).astype(np.float32),
        "face_mask": face_mask,
        "audio_mask": np.ones(frames, dtype=bool),
    }


def npz_body(**arrays: np.ndarray) -> bytes:
    """``np.savez`` of ``arrays`` into memory."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def metric_value(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in a ``/metrics`` text (labels matched as given), or None."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None
