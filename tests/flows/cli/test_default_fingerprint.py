"""With several fingerprints, every command reads the same stated one (issue 18, item 4): the
pinned one, else the one with the newest run, said in one note line; `--fingerprint PREFIX`
chooses another, and `thresholds --fingerprint` pins one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connectors.catalog import Catalog
from flows.cli.main import main
from tests.connectors.analyses.test_fingerprints_view import run
from tests.support.cli_output import stderr_lines
from tests.support.seed_catalog import Call, Seed

START = datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def results(tmp_path):
    """An old analysis heard a blackbird; a newer one (another model option) heard a wren."""
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("d1")
    seed.recording("d1", START, 2, calls={0: [Call("Turdus merula", "Eurasian Blackbird", 0.9)]},
                   fingerprint="aaaa1111", run_id="r1", window_s=3.0)
    seed.recording("d1", START + timedelta(days=1), 2,
                   calls={1: [Call("Troglodytes troglodytes", "Eurasian Wren", 0.8)]},
                   fingerprint="bbbb2222", run_id="r2", window_s=3.0)
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with Catalog(root) as catalog:
        catalog.start_run(run("r1", "aaaa1111", t0))
        catalog.start_run(run("r2", "bbbb2222", t0 + timedelta(days=1), model_options={"x": 1}))
    return root


def species(results, capsys, *extra):
    code = main(["query", "species_by_night", "--results", str(results), "--format", "csv", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, stderr_lines(err)


def test_the_newest_is_read_and_said(results, capsys):
    out, err = species(results, capsys)
    assert "Troglodytes troglodytes" in out and "Turdus merula" not in out
    assert len(err) == 1 and err[0].startswith("dawnchorus: note: ")
    assert "bbbb2222" in err[0] and "the newest of 2" in err[0]
    out, err = species(results, capsys, "--fingerprint", "aa")  # a unique prefix
    assert "Turdus merula" in out and "Troglodytes troglodytes" not in out and err == []
    # Free SQL reads the same one through the analysis views, and says so.
    assert main(["query", "from species_by_night", "--results", str(results), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "Troglodytes troglodytes" in out and "Turdus merula" not in out
    assert "bbbb2222" in err
    # The detections view holds every fingerprint: SQL over it that names none is told so.
    assert main(["query", "select distinct scientific_name from detections", "--results",
                 str(results), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "Troglodytes troglodytes" in out and "Turdus merula" in out
    assert "all 2 fingerprints" in err and "where config_fingerprint" in err


def test_a_pinned_fingerprint_is_what_every_command_reads(results, capsys, tmp_path):
    assert main(["thresholds", "--results", str(results), "--fingerprint", "aaaa", "--by", "ana"]) == 0
    out = capsys.readouterr().out
    assert "aaaa1111" in out and "pinned by ana" in out
    out, err = species(results, capsys)
    assert "Turdus merula" in out and "Troglodytes troglodytes" not in out
    assert "aaaa1111" in err[0] and "pinned" in err[0]
    assert main(["export", "raven", "--results", str(results), "--out", str(tmp_path / "raven")]) == 0
    exported = "".join(p.read_text() for p in (tmp_path / "raven").rglob("*.txt"))
    assert "Turdus merula" in exported and "Troglodytes" not in exported


def test_the_duckdb_command_line_reads_the_same_one(results, capsys):
    import subprocess
    import sys

    def variable() -> str:
        proc = subprocess.run([sys.executable, "-m", "flows.cli", "duckdb", "--results", str(results),
                               "--", "-csv", "-noheader", "-c",
                               "select getvariable('config_fingerprint')"],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert variable() == "bbbb2222"  # the newest
    assert main(["thresholds", "--results", str(results), "--fingerprint", "aaaa"]) == 0
    assert variable() == "aaaa1111"  # the pinned one
