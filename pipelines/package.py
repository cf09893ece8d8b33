"""DVC stage `package`: check the model artefact into models/package/ with a model_card.json, and build its Bento."""

import json
from pathlib import Path

from exprfusion.core.params import load_section
from exprfusion.core.stage_runner import run_stage
from exprfusion.tracking.packaging import PackageParams, build_bento, package_model
from exprfusion.tracking.registration import RegistrationResult

MODEL = Path("models/model.pt")
REPORT = Path("reports/evaluation.json")
REGISTRATION = Path("reports/registration.json")
PACKAGE = Path("models/package")
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # what serving/bentofile.yaml includes is relative to it
BENTOFILE = SOURCE_ROOT / "serving" / "bentofile.yaml"


def main() -> None:
    """Read the `package` params, package the model with its card, and build the Bento that serves it."""
    params = load_section("package", PackageParams)
    card = package_model(
        MODEL,
        PACKAGE,
        metrics=json.loads(REPORT.read_text()),
        registration=RegistrationResult.read(REGISTRATION).to_dict(),
        smoke_frames=params.smoke_frames,
    )
    print(f"wrote {card}")
    build = build_bento(PACKAGE, BENTOFILE, SOURCE_ROOT)
    print(f"built Bento {build.bento_tag} (model {build.model_tag}) in {build.build_seconds:.1f} s")


if __name__ == "__main__":
    run_stage(main)
