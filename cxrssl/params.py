"""Reading ``params.yaml`` into typed, validated settings.

Each stage reads only its own section into a dataclass. An unknown key, a value
of the wrong type or a value out of range raises :class:`ParamError` naming the
key as ``section.key`` and what was expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from cxrssl.errors import ParamError

PARAMS_FILE = Path("params.yaml")

#: The top-level sections of params.yaml; anything else is a typo.
SECTIONS = (
    "data",
    "phantoms",
    "preprocess",
    "split",
    "methods",
    "pretrain",
    "distributed",
    "label_percents",
    "baselines",
    "inits",
    "finetune",
    "evaluate",
    "gradcam",
)


def read_params(path: str | Path = PARAMS_FILE) -> dict:
    """The whole params file as a dict."""
    path = Path(path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ParamError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise ParamError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping of sections")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamError(f"{path}: unknown section {unknown[0]!r}; the sections are {', '.join(SECTIONS)}")
    return data


def check_list(key: str, value, item_type: type) -> list:
    """A typed list parameter, e.g. ``label_percents`` as list[int]."""
    return list(_check_type(key, value, list[item_type]))


def lookup(params: dict, key: str, annotation):
    """One parameter by its dotted key (``pretrain.common.seed``), type-checked; missing is an error."""
    value = params
    for i, part in enumerate(key.split(".")):
        if not isinstance(value, dict) or part not in value:
            raise ParamError(f"params: missing key {'.'.join(key.split('.')[: i + 1])}")
        value = value[part]
    return _check_type(key, value, annotation)


def _check_type(key: str, value, annotation):
    """Coerce ints to floats where a float is expected; reject anything else of the wrong type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(key, value, option)
            except ParamError as error:
                errors.append(error)
        raise errors[0]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"params: {key} is {value!r}; expected a list")
        (item,) = typing.get_args(annotation)[:1]
        return origin(_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"params: {key} is {value!r}; expected a mapping")
        key_type, value_type = typing.get_args(annotation)
        out = {}
        for k, v in value.items():
            if key_type is int and isinstance(k, str) and k.strip().isdigit():  # `dvc exp run -S a.b.100=x`
                k = int(k)
            out[_check_type(f"{key} key", k, key_type)] = _check_type(f"{key}.{k}", v, value_type)
        return out
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ParamError(f"params: {key} is {value!r}; expected true or false")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamError(f"params: {key} is {value!r}; expected an integer")
    if not isinstance(value, annotation):
        raise ParamError(f"params: {key} is {value!r}; expected a {annotation.__name__}")
    return value


def from_dict(cls, section: str, values: dict | None):
    """Build the dataclass ``cls`` from one section of params.yaml.

    Args:
        cls: a dataclass whose fields are the section's keys, every one of
            which must be present (there are no defaults in code); it may
            define ``validate(self) -> None`` raising ParamError for bad values.
        section: the section's name, used in error messages.
        values: the section's mapping.
    """
    if values is None:
        raise ParamError(f"params: missing section {section}")
    if not isinstance(values, dict):
        raise ParamError(f"params: {section} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(f"params: unknown key {section}.{unknown[0]}; {section} takes {', '.join(sorted(fields))}")
    missing = [name for name in fields if name not in values]  # params.yaml is the only source of defaults
    if missing:
        raise ParamError(
            f"params: missing key {section}.{missing[0]}; params.yaml must set every key of "
            f"{section} ({', '.join(sorted(fields))})"
        )
    kwargs = {name: _check_type(f"{section}.{name}", values[name], hints[name]) for name in fields}
    settings = cls(**kwargs)
    if hasattr(settings, "validate"):
        settings.validate()
    return settings


def load_section(cls, section: str, path: str | Path = PARAMS_FILE):
    """Read ``section`` of the params file into ``cls`` (see :func:`from_dict`)."""
    return from_dict(cls, section, read_params(path).get(section))


def require(condition: bool, key: str, value, expected: str) -> None:
    """Raise ParamError ``params: key is value; expected ...`` unless ``condition``."""
    if not condition:
        raise ParamError(f"params: {key} is {value!r}; expected {expected}")
