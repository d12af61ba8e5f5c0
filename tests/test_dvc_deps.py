"""The cache never lies: dvc.yaml declares what each stage's code imports, and every parameter reaches DVC's keys."""

import re

import pytest
import yaml

from tests.imports import REPO, closure, declared_code, needed_code, stage_definitions, stage_module

STAGES = stage_definitions()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_exactly_the_code_it_imports(name):
    stage = STAGES[name]
    needed, declared = needed_code(stage), declared_code(stage)
    missing = sorted(str(p.relative_to(REPO)) for p in needed - declared)
    extra = sorted(str(p.relative_to(REPO)) for p in declared - needed)
    assert not missing, f"stage {name} imports these files but dvc.yaml does not list them as deps: {missing}"
    assert not extra, f"stage {name} lists these deps but never imports them: {extra}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_never_imports_another_stage(name):
    own = stage_module(STAGES[name])
    others = {p for p in closure(own) if p.parent.name == "stages" and p not in (own, REPO / "stages/__init__.py")}
    assert not others, f"stage {name} imports {sorted(map(str, others))}: what stages share belongs in cxrssl/"


def test_the_closure_follows_relative_and_function_level_imports(tmp_path, monkeypatch):
    import tests.imports as imports

    for name, text in {
        "cxrssl/__init__.py": "",
        "cxrssl/a.py": "def f():\n    from cxrssl import b\n",
        "cxrssl/b.py": "from . import c\n",
        "cxrssl/c.py": "X = 1\n",
        "stages/__init__.py": '"""doc"""\n',
        "stages/s.py": "import cxrssl.a\n",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(imports, "REPO", tmp_path)
    found = {str(p.relative_to(tmp_path)) for p in imports.closure(tmp_path / "stages/s.py")}
    assert found == {"stages/s.py", "cxrssl/__init__.py", "cxrssl/a.py", "cxrssl/b.py", "cxrssl/c.py"}
    assert not imports.has_code(tmp_path / "stages/__init__.py") and imports.has_code(tmp_path / "cxrssl/c.py")


def test_removing_a_dependency_line_is_caught():
    stage = dict(STAGES["split"])
    stage["deps"] = [d for d in stage["deps"] if d != "cxrssl/data/splits.py"]
    assert REPO / "cxrssl/data/splits.py" in needed_code(stage) - declared_code(stage)


# -- parameters: DVC's run cache must see every one of them ------------------------------------------------------


def _leaves(value, prefix=""):
    """(dotted key, value) of every leaf of a nested mapping."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _documented_keys() -> set[str]:
    """Every ``-S key=value`` the README and docs tell a user to run."""
    texts = [(REPO / "README.md").read_text(), *(p.read_text() for p in (REPO / "docs").glob("*.md"))]
    return {m.group(1) for text in texts for m in re.finditer(r"-S\s+'?([a-z_][\w.]*)=", text)}


def test_no_parameter_has_a_name_dvcs_run_cache_drops():
    from dvc_data.hashfile.meta import Meta

    dropped = {Meta.PARAM_SIZE, Meta.PARAM_NFILES}  # DVC leaves these keys out of its run-cache key (DVC #10296)
    keys = [key for key, _ in _leaves(_params())] + sorted(_documented_keys())
    bad = [key for key in keys if set(key.split(".")) & dropped]
    assert not bad, f"DVC's run cache would ignore these parameters: {bad}; rename them"


def test_every_documented_parameter_exists():
    params = _params()
    unknown = []
    for key in sorted(_documented_keys()):
        value = params
        for part in key.split("."):
            if not isinstance(value, dict) or (part not in value and not part.isdigit()):
                unknown.append(key)
                break
            value = value.get(part) if part in value else None
    assert not unknown, f"the README or docs name parameters params.yaml does not have: {unknown}"


def test_dvcs_own_run_cache_key_changes_with_every_parameter():
    """DVC's own key function (dvc.stage.cache) over a lock entry holding all of params.yaml, one leaf changed."""
    from dvc.stage.cache import _get_cache_hash

    params = _params()

    def key(values):
        return _get_cache_hash({"cmd": "x", "params": {"params.yaml": values}, "outs": []}, key=True)

    base = key(params)
    unseen = []
    for dotted, value in _leaves(params):
        changed = yaml.safe_load(yaml.safe_dump(params))
        target = changed
        *parents, last = dotted.split(".")
        for part in parents:
            target = target[part if part in target else int(part)]
        target[last if last in target else int(last)] = f"{value}-changed"
        if key(changed) == base:
            unseen.append(dotted)
    assert not unseen, f"DVC's run cache does not see these parameters: {unseen}"


def test_a_key_named_size_would_be_caught():
    from dvc.stage.cache import _get_cache_hash

    entry = {"cmd": "x", "params": {"params.yaml": {"preprocess": {"size": 64}}}, "outs": []}
    changed = {"cmd": "x", "params": {"params.yaml": {"preprocess": {"size": 96}}}, "outs": []}
    assert _get_cache_hash(entry, key=True) == _get_cache_hash(changed, key=True)  # the bug the rename avoids
