"""BentoML's error log line of a client error becomes one WARNING line without traceback or input (the filter of
exprfusion.service.client_error_logs on BentoML's own logger, fed a real pydantic validation error)."""

from __future__ import annotations

import io
import logging

import pytest
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, StrictBool, ValidationError

from exprfusion.service.client_error_logs import BENTOML_ERROR_LOGGER, install_client_error_filter

SECRET = "feature-values-of-a-face-1.2345"


class Input(BaseModel):
    visual: list[list[float]]
    face_mask: list[StrictBool]


@pytest.fixture
def logged():
    """BentoML's error logger, filtered, writing to a buffer; its handlers and filters restored afterwards."""
    logger = logging.getLogger(BENTOML_ERROR_LOGGER)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    filters, level, propagate = list(logger.filters), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    install_client_error_filter()
    install_client_error_filter()  # once per process, however often called
    yield logger, buffer
    logger.removeHandler(handler)
    logger.filters[:], logger.level, logger.propagate = filters, level, propagate


def _raise_and_log(logger: logging.Logger, error: Exception) -> None:
    try:
        raise error
    except Exception:
        logger.error("Exception on %s [%s]", "/predict", "POST", exc_info=True)  # as BentoML's log_exception does


def test_a_validation_error_is_one_warning_line_without_the_input(logged):
    logger, buffer = logged
    try:
        Input.model_validate({"visual": [[0.5, SECRET]], "face_mask": [SECRET]})
    except ValidationError as error:
        assert SECRET in str(error), "control: pydantic's own message quotes the input"
        _raise_and_log(logger, error)
    _raise_and_log(logger, InvalidArgument(f"bad input {SECRET}"))
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "WARNING POST /predict answered 400: 2 validation error(s) at visual.0.1 (float_parsing), "
        "face_mask.0 (bool_type)",
        "WARNING POST /predict answered 400: InvalidArgument",
    ]
    assert len([f for f in logger.filters if type(f).__name__ == "ClientErrorLogFilter"]) == 1


def test_a_server_error_keeps_its_traceback(logged):
    logger, buffer = logged
    _raise_and_log(logger, RuntimeError("the model failed"))
    text = buffer.getvalue()
    assert text.startswith("ERROR Exception on /predict [POST]") and "Traceback" in text and "the model failed" in text
