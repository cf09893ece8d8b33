"""`data.media` in params.yaml: its keys are checked, its values are the library's defaults, its inputs are DVC's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exprfusion.core.errors import InputError
from exprfusion.sources.build_corpus import build_corpus
from exprfusion.sources.extract.settings import ExtractSettings, RunOptions, media_from_params

REPOSITORY = Path(__file__).resolve().parents[2]


def _data_params() -> dict:
    return yaml.safe_load((REPOSITORY / "params.yaml").read_text())["data"]


def test_params_yaml_states_the_library_defaults():
    sources, settings, options = media_from_params(_data_params()["media"], require_sources=False)
    assert sources is None and settings == ExtractSettings() and options == RunOptions()


@pytest.mark.parametrize(
    ("where", "key"),
    [((), "bogus"), (("visual",), "poolling"), (("audio",), "chunk")],
)
def test_a_misspelt_media_key_is_named_by_its_dotted_path_whatever_the_source(tmp_path, where, key):
    data = _data_params() | {"out": str(tmp_path / "corpus")}
    group = data["media"]
    for name in where:
        group = group[name]
    group[key] = 1
    with pytest.raises(InputError, match=rf"data\.media\.{'.'.join([*where, key])}"):
        build_corpus(data)
    assert not (tmp_path / "corpus").exists()


def test_inputs_outside_data_inputs_are_refused(tmp_path):
    folders = {name: tmp_path / "affwild2" / name for name in ("annotations", "cropped_aligned", "videos")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    data = _data_params() | {"source": "media", "out": str(tmp_path / "corpus")}
    data["media"] |= {name: str(folder) for name, folder in folders.items()}
    data["inputs"] = str(tmp_path / "affwild2" / "videos")  # holds the videos only
    with pytest.raises(InputError, match=r"data\.media\.annotations: .* is not inside data\.inputs"):
        build_corpus(data)
    data["inputs"] = str(tmp_path)  # holds the corpus too
    with pytest.raises(InputError, match=r"data\.out: .* is inside data\.inputs"):
        build_corpus(data)
    data["media"]["visual"] = {"model": str(tmp_path / "elsewhere" / "beit")}
    data["inputs"] = str(tmp_path / "affwild2")
    (tmp_path / "elsewhere" / "beit").mkdir(parents=True)
    with pytest.raises(InputError, match=r"data\.media\.visual\.model: .* is not inside data\.inputs"):
        build_corpus(data)
