"""params.yaml is the only source of settings: every key is typed, none is unknown, none may be left out."""

import re
from dataclasses import dataclass, fields

import pytest

from cxrssl.cross_dataset import CrossDatasetConfig
from cxrssl.data.images import PreprocessConfig
from cxrssl.data.sources import DataConfig
from cxrssl.data.splits import SplitConfig
from cxrssl.distributed import validate_params
from cxrssl.errors import ParamError
from cxrssl.evaluation import EvaluateConfig
from cxrssl.finetune import FinetuneConfig
from cxrssl.gradcam import GradcamConfig
from cxrssl.methods import METHODS
from cxrssl.params import SECTIONS, check_list, from_dict, lookup, read_params
from cxrssl.phantoms.dataset import PhantomConfig
from cxrssl.pretraining import PretrainConfig
from tests.conftest import REPO


@dataclass(frozen=True)
class Example:
    count: int
    rate: float
    name: str | None
    flag: bool
    items: list[int] | None


FULL = {"count": 3, "rate": 1, "name": None, "flag": False, "items": [1, 2]}

#: Every section of params.yaml that is read into a config class.
CONFIG_SECTIONS = {
    "data": DataConfig,
    "phantoms": PhantomConfig,
    "preprocess": PreprocessConfig,
    "split": SplitConfig,
    "pretrain.common": PretrainConfig,
    **{f"pretrain.{m}": cls.Config for m, cls in METHODS.items()},
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
    "gradcam": GradcamConfig,
}


def test_types_are_checked_and_ints_become_floats():
    settings = from_dict(Example, "ex", FULL)
    assert settings.rate == 1.0 and isinstance(settings.rate, float) and settings.items == [1, 2]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"count": 1.5}, r"ex\.count is 1\.5; expected an integer"),
        ({"count": True}, r"ex\.count is True; expected an integer"),
        ({"flag": "yes"}, r"ex\.flag is 'yes'; expected true or false"),
        ({"rate": "fast"}, r"ex\.rate is 'fast'; expected a float"),
        ({"items": [1, "a"]}, r"ex\.items\[1\] is 'a'; expected an integer"),
        ({"colour": 1}, r"unknown key ex\.colour; ex takes count, flag, items, name, rate"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ParamError, match=message):
        from_dict(Example, "ex", {**FULL, **values})


def test_a_missing_key_is_an_error_even_where_the_class_has_a_default():
    @dataclass(frozen=True)
    class WithDefault:
        count: int = 1

    with pytest.raises(ParamError, match=r"missing key ex\.count"):
        from_dict(WithDefault, "ex", {})


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamError, match="no such file"):
        read_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        read_params(tmp_path / "bad.yaml")


def test_sections_must_exist_and_be_known(tmp_path):
    with pytest.raises(ParamError, match="missing section ex"):
        from_dict(Example, "ex", None)
    (tmp_path / "p.yaml").write_text("preprocss:\n  image_size: 64\n")
    with pytest.raises(ParamError, match="unknown section 'preprocss'"):
        read_params(tmp_path / "p.yaml")


def _project_params() -> dict:
    return read_params(REPO / "params.yaml")


def test_params_yaml_sets_every_key_of_every_config_and_no_other():
    params = _project_params()
    assert set(params) == set(SECTIONS)
    configs = {
        section: from_dict(cls, section, lookup(params, section, dict)) for section, cls in CONFIG_SECTIONS.items()
    }
    assert set(params["pretrain"]) == {"common", *METHODS}
    validate_params(params["distributed"])
    for key in ("methods", "baselines", "inits"):
        check_list(key, params[key], str)
    check_list("label_percents", params["label_percents"], int)
    for section, config in configs.items():  # every field came from the file (there is nowhere else)
        assert {f.name for f in fields(config)} == set(lookup(params, section, dict)), section


def _leaf_keys():
    params = _project_params()
    return [f"{section}.{key}" for section in CONFIG_SECTIONS for key in lookup(params, section, dict)]


@pytest.mark.parametrize("key", _leaf_keys())
def test_deleting_any_key_from_params_yaml_is_an_error_naming_it(key):
    params = _project_params()
    section, name = key.rsplit(".", 1)
    values = dict(lookup(params, section, dict))
    del values[name]
    with pytest.raises(ParamError, match=rf"missing key {re.escape(key)}\b"):
        from_dict(CONFIG_SECTIONS[section], section, values)


@pytest.mark.parametrize("key", ["backend", "nproc_per_node"])
def test_the_distributed_section_has_no_defaults_either(key):
    section = dict(_project_params()["distributed"])
    del section[key]
    with pytest.raises(ParamError, match=rf"missing key distributed\.{key}"):
        validate_params(section)


def test_a_cross_dataset_needs_every_key_of_data():
    with pytest.raises(ParamError, match=r"missing key evaluate\.cross_dataset\.skip_invalid"):
        from_dict(
            CrossDatasetConfig,
            "evaluate.cross_dataset",
            {"source": "nih", "root": "x", "train_csv": "a.csv", "test_csv": None},
        )
