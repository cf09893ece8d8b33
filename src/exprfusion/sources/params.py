"""The ``data`` section of ``params.yaml``: where the corpus comes from (``source``), where it goes, and each source's
settings. Every group is checked whichever source is used, so a misspelt key is an error naming its dotted path."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from exprfusion.core.params import DEFAULT_CORPUS
from exprfusion.core.settings import settings
from exprfusion.sources.extract.settings import MediaParams
from exprfusion.sources.importer import ImportSources
from exprfusion.sources.synthetic.profiles import PROFILES

Source = Literal["synthetic", "import", "media"]


@settings(frozen=True)
class SyntheticParams:
    """``data.synthetic``: the arguments of :func:`exprfusion.sources.synthetic.generate_corpus` a pipeline sets.

    ``missing_face_rate`` None keeps the profile's (about 2 % of the labelled frames).
    """

    profile: str = "realistic"
    seed: Annotated[int, Field(ge=0)] = 0
    missing_face_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown synthetic profile {self.profile!r}; choose one of {sorted(PROFILES)}")


@settings(frozen=True)
class ImportParams(ImportSources):
    """``data.import``: :class:`ImportSources` with every path optional (required only by ``source: import``)."""

    annotations: Path | None = None
    visual: Path | None = None
    audio: Path | None = None


@settings(frozen=True)
class DataParams:
    """The ``data`` section: the corpus stage's whole input.

    Attributes:
        source: ``synthetic`` (the generator), ``import`` (features from your extractors) or ``media`` (features
            extracted from the videos).
        out: the corpus folder every later stage reads.
        inputs: the folder holding every input of ``import`` and ``media`` (DVC hashes it as a dep of the corpus
            stage); with the synthetic source, the generator's code.
    """

    source: Source = "synthetic"
    out: str = DEFAULT_CORPUS
    inputs: str | None = "src/exprfusion/sources/synthetic"
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    imports: ImportParams = Field(default_factory=ImportParams, alias="import")
    media: MediaParams = field(default_factory=MediaParams)
