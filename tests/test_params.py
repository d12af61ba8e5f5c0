from dataclasses import dataclass

import pytest

from cxrssl.errors import ParamError
from cxrssl.params import from_dict, read_params


@dataclass(frozen=True)
class Example:
    count: int = 1
    rate: float = 0.5
    name: str | None = None
    flag: bool = False
    items: list[int] | None = None


def test_types_are_checked_and_ints_become_floats():
    settings = from_dict(Example, "ex", {"count": 3, "rate": 1, "name": None, "items": [1, 2]})
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
        from_dict(Example, "ex", values)


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamError, match="no such file"):
        read_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        read_params(tmp_path / "bad.yaml")


def test_sections_must_exist_and_be_known(tmp_path):
    with pytest.raises(ParamError, match="missing section ex"):
        from_dict(Example, "ex", None)
    (tmp_path / "p.yaml").write_text("preprocss:\n  size: 64\n")
    with pytest.raises(ParamError, match="unknown section 'preprocss'"):
        read_params(tmp_path / "p.yaml")
