"""Fresh catalog locations of each kind for contract tests: the embedded SQLite default (a local
results folder), and a Postgres catalog (one new database each) with its data on S3 (one new
bucket each, on the session's moto server)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from connectors.location import ResultsLocation

#: The catalog kinds every catalog contract test runs against.
LAKE_KINDS = ("sqlite", "postgres+s3")
#: Kinds that start servers (Postgres, moto S3): their tests are `e2e`.
SERVER_LAKE_KINDS = frozenset({"postgres+s3"})

_numbers = itertools.count()


class LakeFactory:
    def __init__(self, kind: str, request: Any, tmp_path_factory: Any):
        self.kind = kind
        self._request = request
        self._tmp = tmp_path_factory

    @property
    def s3(self) -> Any:
        return self._request.getfixturevalue("s3_server")

    @property
    def postgres(self) -> Any:
        return self._request.getfixturevalue("postgres")

    def __call__(self, name: str = "results") -> ResultsLocation:
        if self.kind == "sqlite":
            return ResultsLocation.resolve(self._tmp.mktemp("lake") / name)
        n = next(_numbers)
        bucket = self.s3.make_bucket(f"lake-{n}")
        catalog = self.postgres.create_database(f"lake_{n}")
        return ResultsLocation.resolve(f"{bucket}/{name}", catalog)

    def cli_args(self, location: ResultsLocation) -> list[str]:
        """`--results ... [--catalog ...]` naming this location on the command line."""
        args = ["--results", location.results]
        if not location.is_default:
            args += ["--catalog", location.catalog]
        return args

    def files(self, location: ResultsLocation) -> list[str]:
        """Every file under the results root, relative to it."""
        if location.root is not None:
            return sorted(str(p.relative_to(location.root)) for p in Path(location.root).rglob("*")
                          if p.is_file())
        fs = self.s3.filesystem()
        prefix = location.results[len("s3://"):]
        return sorted(path[len(prefix) + 1:] for path in fs.find(prefix))
