"""DVC stage `package`: copy and check the model artefact into models/package/ with a model_card.json."""

import json
from pathlib import Path

from exprfusion.packaging import package_model
from exprfusion.params import load_section
from exprfusion.stage import run_stage

MODEL = Path("models/model.pt")
METRICS = Path("reports/metrics.json")
REGISTRATION = Path("reports/registration.json")
PACKAGE = Path("models/package")


def main() -> None:
    """Read the `package` params and package the model with its card."""
    params = load_section("package")
    card = package_model(
        MODEL,
        PACKAGE,
        metrics=json.loads(METRICS.read_text()),
        registration=json.loads(REGISTRATION.read_text()),
        smoke_frames=params["smoke_frames"],
    )
    print(f"wrote {card}")


if __name__ == "__main__":
    run_stage(main)
