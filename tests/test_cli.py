"""A stage's item (pretrain@<method>, finetune@<init>-<pct>) comes from DVC, checked, never through a shell."""

import pytest

from cxrssl.cli import check_name, fill, stage_item
from cxrssl.errors import ParamError


@pytest.mark.parametrize("name", ["moco; rm -rf ~", "$(touch x)", "../../etc", "Moco", "", "sim clr", "a-b"])
def test_only_plain_names_pass(name):
    with pytest.raises(ParamError, match="expected a name of lower-case letters"):
        check_name("methods", name)


def test_the_item_comes_from_the_command_line_or_dvc(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert stage_item("pretrain", "moco") == "moco"
    with pytest.raises(ParamError, match="Run it through DVC"):
        stage_item("pretrain", None)
    monkeypatch.setenv("DVC_STAGE", "finetune@simclr-10")
    assert stage_item("finetune", None) == "simclr-10"
    monkeypatch.setenv("DVC_STAGE", "sub/dvc.yaml:pretrain@swav")
    assert stage_item("pretrain", None) == "swav"
    with pytest.raises(ParamError):
        stage_item("baseline", None)


def test_fill_replaces_only_the_named_fields():
    assert str(fill("models/finetune/{init}-{pct}/x{y}.pt", init="moco", pct=10)) == "models/finetune/moco-10/x{y}.pt"
