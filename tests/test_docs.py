"""The README and docs: generated tables match the recorded results, links resolve, the repository speaks of itself."""

import re
import subprocess

import pytest

from bench import tables
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_generated_tables_match_the_recorded_results(doc):
    text = doc.read_text()
    assert tables.render(text) == text, f"{doc.name} is out of date: run python -m bench.tables"


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_bytes()) <= 10_000


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"


def test_the_repository_speaks_only_of_itself():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    names = [
        n
        for n in files.decode().split("\0")
        if n.endswith((".py", ".md", ".yaml", ".toml", ".txt", ".cfg")) or n in ("Makefile", ".ci/run")
    ]
    # what a reader of the repository cannot follow: material beside it, a tracker's issues, sessions
    phrases = [
        r"\.\./shared",
        r"DESIGN\.md",
        r"STYLE\.md",
        "student" + " project",
        "original" + " (study|project)",
        "lent" + " a device",
        r"\bissue \d+\b",
    ]
    outside = re.compile("|".join(phrases), re.I)
    hits = [
        f"{name}: {line.strip()}"
        for name in names
        if name != "dvc.lock"
        for line in (REPO / name).read_text(errors="ignore").splitlines()
        if outside.search(line)
    ]
    assert not hits, hits[:5]
