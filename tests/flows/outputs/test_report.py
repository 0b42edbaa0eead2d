"""The run report: four non-empty PNGs of the stated size and an index.html that a real browser
(Debian's chromium) opens without errors, every image loaded at its stated size; `dawnchorus
report` rebuilds it from the catalog without Prefect."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timezone

import pytest

from tests.support.browser import console_errors
from connectors.catalog import Catalog
from connectors.tables import RunRow
from flows.cli.main import main
from flows.outputs.plots import SIZE_PX
from flows.outputs.report import write_report
from tests.support.seed_catalog import OWL, ROBIN, WREN, Seed

PNGS = ("diel.png", "nights.png", "effort.png", "accumulation.png", "sunrise.png")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    seed = Seed(root)
    seed.deployment("marsh-1", site_id="marsh", timezone="Europe/London")
    seed.deployment("wood-1", site_id="wood", timezone="Europe/London")
    for day in (14, 15, 16):
        start = datetime(2024, 5, day, 3, 30, tzinfo=timezone.utc)
        seed.recording("marsh-1", start, 6, window_s=600.0,
                       calls={0: [ROBIN], 2: [ROBIN, WREN], 5: [OWL] if day == 16 else []},
                       status={4: "failed"} if day == 15 else None)
        seed.recording("wood-1", start, 3, window_s=600.0, calls={1: [WREN]})
    started = datetime(2024, 5, 17, 1, 0, tzinfo=timezone.utc)
    with Catalog(root) as catalog:
        catalog.start_run(RunRow(
            run_id="run-1", flow="nightly", started_at=started, finished_at=started,
            status="completed", parameters="{}", config_fingerprint="fp-birdnet",
            model_id="birdnet@test", code_version="test", counts=json.dumps({"windows": 27}),
            host="h", pid=1, interrupted_at=None))
    return root


def test_every_plot_and_the_page(root, browser):
    index = write_report(str(root), "run-1", {"windows": 27, "windows_failed": 1}, skipped=[])
    out = root / "reports" / "run-1"
    assert index == str(out / "index.html")
    for name in PNGS:
        assert (out / name).stat().st_size > 10_000, name
        assert png_size(out / name) == SIZE_PX, name
    browser.get((out / "index.html").as_uri())
    images = browser.find_elements("tag name", "img")
    assert sorted(i.get_attribute("src").rsplit("/", 1)[-1] for i in images) == sorted(PNGS)
    for image in images:
        loaded = browser.execute_script(
            "return [arguments[0].complete, arguments[0].naturalWidth, arguments[0].naturalHeight,"
            " Number(arguments[0].getAttribute('width')), Number(arguments[0].getAttribute('height'))]",
            image)
        assert loaded[0] and loaded[1:3] == list(SIZE_PX) == loaded[3:5], loaded
    assert console_errors(browser) == []
    text = browser.find_element("tag name", "body").text
    assert "Eurasian Wren" in text and "decode error" in text  # tables and failures


def test_an_empty_catalog_still_draws_every_picture(tmp_path):
    with Catalog(tmp_path) as catalog:
        now = datetime(2024, 5, 17, tzinfo=timezone.utc)
        catalog.start_run(RunRow(run_id="r0", flow="nightly", started_at=now, finished_at=now,
                                 status="completed", parameters="{}", config_fingerprint=None,
                                 model_id=None, code_version="t", counts="{}", host=None,
                                 pid=None, interrupted_at=None))
    write_report(str(tmp_path), "r0")
    for name in PNGS:
        assert png_size(tmp_path / "reports" / "r0" / name) == SIZE_PX


def test_the_cli_rebuilds_the_latest_report(root, capsys):
    out = root / "reports" / "run-1"
    for name in PNGS:
        (out / name).unlink(missing_ok=True)
    assert main(["report", "--results", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert all((out / name).exists() for name in PNGS)
    assert "27" in (out / "summary.md").read_text()  # the run's recorded counts


def test_a_run_that_committed_nothing_still_gets_its_report(root):
    # Its fingerprint has no windows in a catalog that holds another one's.
    now = datetime(2024, 5, 18, tzinfo=timezone.utc)
    with Catalog(root) as catalog:
        catalog.start_run(RunRow(run_id="run-2", flow="nightly", started_at=now, finished_at=now,
                                 status="failed", parameters="{}", config_fingerprint="fp-new",
                                 model_id="m", code_version="t", counts="{}", host=None, pid=None,
                                 interrupted_at=None))
    index = write_report(str(root), "run-2")
    assert "run-2" in open(index, encoding="utf-8").read()
    for name in PNGS:
        assert png_size(root / "reports" / "run-2" / name) == SIZE_PX


def test_a_rebuilt_report_keeps_the_skipped_paths_where_the_results_are(lake):
    """A report lands beside the results (uploaded when they are on S3); rebuilding it from the
    catalog keeps the skipped paths the run listed, which only the first report knew."""
    from connectors.storage import SkippedPath

    location = lake()
    now = datetime(2024, 5, 17, tzinfo=timezone.utc)
    with Catalog(location) as catalog:
        catalog.start_run(RunRow(run_id="r0", flow="nightly", started_at=now, finished_at=now,
                                 status="completed", parameters="{}", config_fingerprint=None,
                                 model_id=None, code_version="t", counts="{}", host=None,
                                 pid=None, interrupted_at=None))
    skipped = [SkippedPath("site/notes.txt", f"{location.results}/site/notes.txt",
                           "not_audio", ".txt")]
    first = write_report(location, "r0", {"windows": 0}, skipped=skipped)
    rebuilt = write_report(location, "r0")
    assert first == rebuilt == f"{location.results}/reports/r0/index.html"
    files = lake.files(location)
    assert {f"reports/r0/{name}" for name in (*PNGS, "index.html", "skipped.csv")} <= set(files)
    if location.root is not None:
        text = (location.root / "reports" / "r0" / "skipped.csv").read_text()
    else:
        text = lake.s3.filesystem().cat_file(f"{location.results}/reports/r0/skipped.csv").decode()
    assert "site/notes.txt" in text and "not_audio" in text, text
