"""A results folder remembers its analysis (issue 18, item 4): a plain `dawnchorus run` (the
nightly one) continues it under the same fingerprint, saying which settings it kept; a
deliberate change starts a new fingerprint and says so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connectors.catalog import CatalogReader
from tests.support.cli_output import stderr_lines
from tests.support.synth_audio import make_deployment

pytestmark = [pytest.mark.slow]

RATE_HZ = 16_000
START = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)


@pytest.mark.usefixtures("prefect_server", "ray_local")
def test_a_plain_run_continues_the_results_analysis(tmp_path, capsys):
    from flows.cli.main import main

    source, results = tmp_path / "src", tmp_path / "res"
    make_deployment(source, "dep-a", [START], 20.0, RATE_HZ)
    base = ["run", "--source", str(source), "--results", str(results)]
    first = [*base, "--model", "placeholder", "--option", f"sample_rate_hz={RATE_HZ}",
             "--window-s", "5"]
    assert main(first) == 0
    capsys.readouterr()
    make_deployment(source, "dep-a", [START + timedelta(days=1)], 20.0, RATE_HZ, level_dbfs=-45)
    assert main(base) == 0  # the next night, no model or window named
    notes = [line for line in stderr_lines(capsys.readouterr().err) if "note:" in line]
    assert len(notes) == 1 and "continuing the results' analysis" in notes[0]
    assert "model placeholder" in notes[0] and "window-s 5.0" in notes[0]
    with CatalogReader(results) as reader:
        kept = reader.query("select config_fingerprint, count(*) as n from windows "
                            "group by all").to_pylist()
    assert len(kept) == 1 and kept[0]["n"] == 8  # two 20-s recordings in 5-s windows
    # A deliberate change of window: a new analysis, said as such.
    assert main([*first[:-1], "4"]) == 0
    notes = [line for line in stderr_lines(capsys.readouterr().err) if "note:" in line]
    assert len(notes) == 1 and "a new analysis" in notes[0] and "--window-s 4.0 (was 5.0)" in notes[0]
    with CatalogReader(results) as reader:
        prints = reader.query("select count(distinct config_fingerprint) as n from windows").to_pylist()
    assert prints == [{"n": 2}]
