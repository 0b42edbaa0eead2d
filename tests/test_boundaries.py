"""The house's boundaries that import-linter cannot see, checked on the source: only `flows/cli`
prints or parses arguments, and no code outside `connectors/` names a `.sql` file or holds SQL
(import-linter, run by `make test`, holds the import contracts in pyproject.toml)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("flows", "connectors", "naturelm_core")

PRINTS = re.compile(r"\bprint\(|^\s*(import argparse|from argparse import)|sys\.std(out|err)\.write")
SQL_FILE = re.compile(r"\bsql_(text|statements)\(|[\"'](reads|writes|views|migrations|analyses|postgres)"
                      r"/[a-z_/]+[\"']")
SQL_TEXT = re.compile(r"(?i)[\"'][^\"'\n]*\b(select\b[^\"'\n]*\bfrom\b|insert\s+into\b|delete\s+from\b"
                      r"|update\s+\w+\s+set\b|create\s+(or\s+replace\s+)?(temp\s+)?view\b|attach\s)")


def code_lines(*roots: str):
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(REPO).parts):
                continue  # make bench's bench/.venv-incumbents: installed packages, not ours
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.lstrip().startswith("#"):
                    yield path.relative_to(REPO).as_posix(), number, line


def offenders(pattern: re.Pattern, roots: tuple[str, ...], allowed: str) -> list[str]:
    return [f"{path}:{number}: {line.strip()}" for path, number, line in code_lines(*roots)
            if not path.startswith(allowed) and pattern.search(line)]


def test_only_the_cli_prints_or_parses_arguments():
    assert offenders(PRINTS, LIBRARY, "flows/cli/") == []


def test_only_connectors_name_sql_files():
    assert offenders(SQL_FILE, ("flows", "naturelm_core", "bench"), "connectors/") == []


def test_only_connectors_hold_sql():
    assert offenders(SQL_TEXT, ("flows", "naturelm_core"), "connectors/") == []


def test_the_patterns_see_what_they_look_for():
    assert PRINTS.search('    print(f"x")') and PRINTS.search("import argparse")
    assert not PRINTS.search("fingerprint(settings)")
    assert SQL_FILE.search('sql_text("reads/runs")') and SQL_FILE.search('"reads/review/window"')
    assert SQL_TEXT.search('count = "select count(*) as n from detections"')
    assert not SQL_TEXT.search('help="run one read-only SELECT (analyses are views)"')


#: Third-party packages the library may import inside a function, and why: each is slow to
#: import (seconds on 2 cores) or an optional extra, and only one path needs it. Everything else
#: (the standard library, numpy, the house's own modules) is imported at the top of its module;
#: start-up laziness otherwise lives in `flows/cli`, which imports a command's modules when that
#: command runs.
DEFERRED = {
    "ray": "Ray's start-up; only a run's engine needs it",
    "prefect": "Prefect's settings and context; only the flows need them",
    "transformers": "NatureLM, CLAP and SALMONN only",
    "tokenizers": "the tiny test checkpoints only",
    "safetensors": "SALMONN's Whisper weights only",
    "openvino": "optional BirdNET CNN engine",
    "flash_attn": "optional attention kernel (GPU)",
    "psycopg": "Postgres team catalogs only",
    "ai_edge_litert": "BirdNET's interpreter, only when BirdNET is loaded",
    "flatbuffers": "reading BirdNET's model file, only when its CNN is cut",
    "s3fs": "object storage only (aiobotocore is slow to import)",
    "botocore": "object storage only",
    "sklearn": "learn only",
    "scipy": "BatDetect2's polyphase resampling only (scipy.signal costs a second to import)",
    "onnxruntime": "the speech detector, in model actors only (docs/privacy.md)",
    "matplotlib": "report thumbnails only",
    "frictionless": "the Camtrap DP export only",
    "jsonschema": "the Camtrap DP export only",
    "referencing": "the Camtrap DP export only",
}


def function_level_imports(*roots: str):
    import ast

    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for inner in ast.walk(node):
                        if isinstance(inner, ast.Import):
                            names = [a.name for a in inner.names]
                        elif isinstance(inner, ast.ImportFrom):
                            names = [inner.module or ""]
                        else:
                            continue
                        for name in names:
                            yield path.relative_to(REPO).as_posix(), inner.lineno, name


def test_the_library_imports_at_the_top_but_for_slow_or_optional_packages():
    found = [f"{path}:{line}: import {name}" for path, line, name in
             function_level_imports(*LIBRARY)
             if not path.startswith("flows/cli/") and name.split(".")[0] not in DEFERRED]
    assert found == []
