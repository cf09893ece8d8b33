"""What users hold from before the library was layered still loads: the pyfunc class a registered MLflow model
pickled by its old module path, a face detector named by its old import path, and ``exprfusion.model``'s names."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from exprfusion.core.errors import InputError
from exprfusion.sources.extract.faces import HaarFaceDetector, load_detector
from exprfusion.tracking.pyfunc_model import ExpressionModel


def test_a_pickle_naming_the_old_pyfunc_module_loads_the_current_class():
    # How cloudpickle stores an importable class: a global reference, module path then name (protocol 0 shown).
    old_reference = b"cexprfusion.pyfunc_model\nExpressionModel\n."
    assert pickle.loads(old_reference) is ExpressionModel
    with pytest.raises(ModuleNotFoundError):  # control: only the listed old paths are aliased
        pickle.loads(b"cexprfusion.no_such_module\nExpressionModel\n.")


def test_a_face_detector_named_by_its_old_path_loads():
    assert isinstance(load_detector("exprfusion.faces:HaarFaceDetector"), HaarFaceDetector)
    assert isinstance(load_detector("exprfusion.video.faces:HaarFaceDetector"), HaarFaceDetector)
    with pytest.raises(InputError, match="cannot be imported"):  # control: a path that never existed
        load_detector("exprfusion.detectors:HaarFaceDetector")


def test_the_model_package_exports_the_config_and_the_model_in_a_fresh_interpreter():
    # A fresh interpreter: nothing imported before decides whether the aliases and exports resolve.
    code = (
        "from exprfusion.model import FusionConfig, FusionTransformer\n"
        "import exprfusion.model.fusion_config as c, exprfusion.model.fusion_transformer as t\n"
        "import exprfusion.pyfunc_model as p, exprfusion.tracking.pyfunc_model as q\n"
        "assert FusionConfig is c.FusionConfig and FusionTransformer is t.FusionTransformer and p is q\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
