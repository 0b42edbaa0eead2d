"""Loading the `.sql` files of the `dawnchorus_sql` package (the repository's `sql/` folder):
the only place that turns a statement's name into its text."""

from __future__ import annotations

import importlib.resources


def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. "writes/commit_unit"), shipped as package data."""
    parts = name.split("/")
    resource = importlib.resources.files("dawnchorus_sql").joinpath(*parts[:-1], parts[-1] + ".sql")
    return resource.read_text(encoding="utf-8")


def sql_statements(name: str) -> list[str]:
    """The statements of a `.sql` file, split on `;` at the end of a line, comments kept."""
    statements, current = [], []
    for line in sql_text(name).splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    rest = "\n".join(current).strip()
    if rest and not all(ln.strip().startswith("--") or not ln.strip() for ln in current):
        statements.append(rest)
    return statements


def folder_files(folder: str) -> list[str]:
    """`folder/<stem>` names of the .sql files in a package folder, sorted."""
    root = importlib.resources.files("dawnchorus_sql").joinpath(folder)
    return sorted(f"{folder}/{p.name[:-4]}" for p in root.iterdir() if p.name.endswith(".sql"))
