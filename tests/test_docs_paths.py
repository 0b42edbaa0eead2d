"""Docs follow the tree: every repository path a doc names in backticks exists."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
#: Where a repository path starts; anything else in backticks is code, a command or a value.
TOP = ("flows/", "connectors/", "naturelm_core/", "sql/", "infra/", "tests/", "bench/", "docs/",
       "pyproject.toml", "prefect.yaml", "Makefile", "README.md", "requirements")
#: Placeholders and patterns, not paths: `sql/analyses/NAME.sql`, `data/<table>/`, `*.sql`.
NOT_A_PATH = re.compile(r"[<>*{}$]|\.\.\.|\b[A-Z]{3,}\b")


def generated(path: str) -> bool:
    """Whether `.gitignore` names `path` (made by `make`: bench results, the incumbents' venv)."""
    for line in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip().lstrip("/").rstrip("/")
        if pattern and not pattern.startswith(("#", "!")) and "/" in pattern and (
                fnmatch.fnmatch(path.rstrip("/"), pattern)):
            return True
    return False


def named_paths(text: str) -> set[str]:
    found = set()
    for quoted in re.findall(r"`([^`\n]+)`", text):
        for word in quoted.split():
            word = word.strip("(),;'\"")
            if not word.startswith(TOP) or NOT_A_PATH.search(word):
                continue
            found.add(re.split(r"::|:(?=[A-Za-z_])", word)[0].rstrip(":"))  # test ids, entrypoints
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_backticked_path_exists(doc):
    missing = sorted(p for p in named_paths(doc.read_text(encoding="utf-8"))
                     if not (REPO / p).exists() and not generated(p))
    assert missing == [], f"{doc.name} names paths that do not exist"


def test_the_check_sees_paths_and_skips_placeholders():
    text = ("`flows/pipeline/run.py` and `tests/x.py::test_y` and `flows/pipeline/prefect_flows.py:nightly`, "
            "not `sql/analyses/NAME.sql`, `data/<table>/` or `dawnchorus run`")
    assert named_paths(text) == {"flows/pipeline/run.py", "tests/x.py",
                                 "flows/pipeline/prefect_flows.py"}
