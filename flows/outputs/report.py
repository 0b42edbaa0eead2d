"""The run report: `<results>/reports/<run_id>/` with plots, tables and failures.

- `index.html`: the run's counts, four PNGs (diel activity, detections per night per site, effort
  per day, species accumulation) and the tables: detections per deployment and species among this
  run's windows, species by site and night, failures, source paths not analysed;
- `summary.md` (the same tables), `failures.csv`, `skipped.csv`;
- the same as Prefect artifacts on the flow run (markdown tables, a link to index.html).

The pictures and the by-night table cover everything the catalog holds under the run's
fingerprint (the season so far); the counts and failures are the run's own.
`dawnchorus report --results R [--catalog C] [--run RUN_ID]` rebuilds a report from the catalog.
With results on S3 the report is drawn in a local staging folder and uploaded to
`<results>/reports/<run_id>/`.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from connectors.catalog import CatalogReader
from connectors.catalog.reads import runs as catalog_runs
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from connectors.storage import SkippedPath

log = logging.getLogger(__name__)

#: (file, title, function in flows.outputs.plots, the analysis it draws)
PLOTS = (
    ("diel.png", "Diel activity", "diel_heatmap", "diel"),
    ("nights.png", "Detections per night and site", "detections_per_night", "species_by_night"),
    ("effort.png", "Effort per day", "effort_per_day", "effort_by_day"),
    ("accumulation.png", "Species accumulation", "species_accumulation", "species_accumulation"),
)


def markdown_table(table: pa.Table, limit: int = 50) -> str:
    """A pipe table of the first `limit` rows."""
    if table.num_rows == 0:
        return "_none_\n"
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.slice(0, limit).to_pylist():
        lines.append("| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |")
    if table.num_rows > limit:
        lines.append(f"\n… {table.num_rows - limit} more rows")
    return "\n".join(lines) + "\n"


def html_table(table: pa.Table, limit: int = 200) -> str:
    if table.num_rows == 0:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(n)}</th>" for n in table.column_names)
    body = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else html.escape(str(v))}</td>" for v in r.values())
        + "</tr>" for r in table.slice(0, limit).to_pylist())
    more = f"<p>… {table.num_rows - limit} more rows</p>" if table.num_rows > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def latest_run_id(results: str | ResultsLocation, catalog: str | None = None) -> str:
    with CatalogReader(results, catalog=catalog) as reader:
        runs = catalog_runs(reader)
    if not runs:
        raise ConfigError(f"{results}: the catalog has no runs yet")
    return runs[0].run_id


def write_report(results: str | ResultsLocation, run_id: str, counts: dict[str, Any] | None = None,
                 skipped: list[SkippedPath] | None = None,
                 announce: Callable[[str, str, str], None] | None = None,
                 threshold: float | None = None, location_threshold: float | None = None) -> str:
    """Write reports/<run_id>/ and publish its artifacts; the path of its index.html.

    `counts` default to what the run recorded; `skipped` lists the source paths that were not
    analysed, each with its reason (when rebuilding, the report's own skipped.csv is kept).
    `announce(run_id, summary_markdown, index)` is told where the report is (a flow run's
    artifacts, `flows.pipeline.run`). `threshold` and `location_threshold` replace the
    catalog's, as `dawnchorus query`'s do.
    """
    location = ResultsLocation.resolve(results)
    with CatalogReader(location, threshold=threshold,
                       location_threshold=location_threshold) as reader:
        runs = {r.run_id: dataclasses.asdict(r) for r in catalog_runs(reader)}
        if run_id not in runs and counts is None:
            raise ConfigError(f"{results}: no run {run_id!r} in the catalog")
        # A run not (yet) recorded gets a report of what the caller knows about it.
        run = runs.get(run_id) or {"run_id": run_id, "status": "unknown", "flow": None,
                                   "model_id": None, "config_fingerprint": None,
                                   "started_at": None, "finished_at": None, "counts": None}
        if counts is None:
            counts = json.loads(run["counts"] or "{}")
        fingerprint = run["config_fingerprint"]
        scope = {"config_fingerprint": fingerprint or ""}
        species = reader.analysis("run_species_counts", {"run_id": run_id})
        failures = reader.analysis("run_failures", {"run_id": run_id})
        hidden = reader.analysis("run_hidden_by_filters", {"run_id": run_id})
        if fingerprint in reader.fingerprints:
            tables = {name: reader.analysis(name, scope) for _, _, _, name in PLOTS}
        else:  # the run committed no window (or knew no model): nothing to draw yet
            tables = {name: pa.table({}) for _, _, _, name in PLOTS}
    out, publish = _report_folder(location, run_id)
    out.mkdir(parents=True, exist_ok=True)
    skipped_rows = _skipped(out, skipped)
    from flows.outputs import plots  # matplotlib, only when a report is drawn

    images = [(file, title, getattr(plots, fn)(tables[name].to_pylist(), out / file))
              for file, title, fn, name in PLOTS]
    from flows.outputs.calibration.curves import calibration_plots  # the species calibrate saw (docs/review.md)

    calibration = calibration_plots(location, out, fingerprint) if fingerprint else []
    nights = tables["species_by_night"]

    counts_md = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in counts.items())
    warnings = pa.table({"warning": list(run.get("warnings") or [])})
    summary = (
        f"# dawnchorus run {run_id}\n\n"
        f"- status: {run['status']}\n- model: {run['model_id']}\n- fingerprint: {fingerprint}\n"
        f"{counts_md}\n\n"
        f"## Source check warnings (docs/source.md)\n\n{markdown_table(warnings)}\n"
        f"## Strong predictions hidden by filters (score >= 0.5; dawnchorus query "
        f"--location-threshold 0 shows location-filtered ones)\n\n{markdown_table(hidden)}\n"
        f"## Detections per deployment and species (this run's windows)\n\n{markdown_table(species)}\n"
        f"## Species by site and night (fingerprint {fingerprint})\n\n{markdown_table(nights)}\n"
        f"## Failures\n\n{markdown_table(failures)}"
        f"\n## Source paths not analysed\n\n{markdown_table(skipped_rows)}"
    )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    _write_csv(out / "failures.csv", failures)
    _write_csv(out / "skipped.csv", skipped_rows)
    index = out / "index.html"
    index.write_text(_html(run, counts, images, species, nights, failures, skipped_rows,
                           calibration, hidden, warnings), encoding="utf-8")
    where = publish(index)
    if announce is not None:
        announce(run_id, summary, where)
    log.info("report written to %s", where)
    return where


def hidden_by_filters(results: str | ResultsLocation, run_id: str) -> list[dict[str, Any]]:
    """A run's strong predictions the species filters hid (`run_hidden_by_filters`)."""
    with CatalogReader(ResultsLocation.resolve(results)) as reader:
        return reader.analysis("run_hidden_by_filters", {"run_id": run_id}).to_pylist()


def _report_folder(location: ResultsLocation, run_id: str) -> tuple[Path, Callable[[Path], str]]:
    """The folder to draw the report in, and what makes it public: nothing for a local results
    folder; for results on S3, an upload of the staged files to `<results>/reports/<run_id>/`."""
    if location.root is not None:
        return location.root / "reports" / run_id, str
    staging = Path(tempfile.mkdtemp(prefix="dawnchorus-report-"))
    fs, target = location.s3_filesystem(), f"{location.results}/reports/{run_id}"
    # A rebuild keeps the skipped paths only the first report knew (`_skipped`): fetch them.
    (staging / run_id).mkdir()
    if fs.exists(f"{target}/skipped.csv"):
        fs.get_file(f"{target}/skipped.csv", str(staging / run_id / "skipped.csv"))

    def upload(index: Path) -> str:
        try:
            for path in sorted(index.parent.iterdir()):
                fs.put_file(str(path), f"{target}/{path.name}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return f"{target}/{index.name}"

    return staging / run_id, upload


def _html(run: dict, counts: dict, images: list, species: pa.Table, nights: pa.Table,
          failures: pa.Table, skipped: pa.Table, calibration: list = (),
          hidden: pa.Table | None = None, warnings: pa.Table | None = None) -> str:
    e = html.escape
    facts = [("status", run["status"]), ("flow", run["flow"]), ("model", run["model_id"]),
             ("fingerprint", run["config_fingerprint"]), ("started", run["started_at"]),
             ("finished", run["finished_at"])] + list(counts.items())
    facts_html = "".join(f"<tr><th>{e(str(k).replace('_', ' '))}</th><td>{e(str(v))}</td></tr>"
                         for k, v in facts)
    from flows.outputs.plots import SIZE_PX

    width, height = SIZE_PX
    figures = "".join(
        f'<figure><a href="{e(file)}"><img src="{e(file)}" alt="{e(title)}" width="{width}" '
        f'height="{height}"></a><figcaption>{e(title)}</figcaption></figure>'
        for file, title, _ in images)
    curves = _calibration_html(calibration)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dawnchorus run {e(run['run_id'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }}
figure {{ margin: 1em 0; }}
</style>
</head>
<body>
<h1>dawnchorus run {e(run['run_id'])}</h1>
<table>{facts_html}</table>
<p>Pictures and the by-night table: everything under fingerprint
{e(str(run['config_fingerprint']))}; counts and failures: this run.
<a href="summary.md">summary.md</a> · <a href="failures.csv">failures.csv</a> ·
<a href="skipped.csv">skipped.csv</a></p>
<h2>Source check warnings</h2>
{html_table(warnings if warnings is not None else pa.table({}))}
<h2>Strong predictions hidden by filters</h2>
<p>Score 0.5 or more, hidden from detections by a species filter (which, and why);
<code>dawnchorus query --location-threshold 0</code> shows the location-filtered ones.</p>
{html_table(hidden if hidden is not None else pa.table({}))}
{figures}
{curves}
<h2>Detections per deployment and species (this run's windows)</h2>
{html_table(species)}
<h2>Species by site and night</h2>
{html_table(nights)}
<h2>Failures</h2>
{html_table(failures)}
<h2>Source paths not analysed</h2>
{html_table(skipped)}
</body>
</html>
"""


def _calibration_html(calibration: list) -> str:
    """Each reviewed species' calibration curve (`dawnchorus calibrate`), if any."""
    if not calibration:
        return ""
    from flows.outputs.calibration.curves import SIZE_PX as CURVE_PX

    e = html.escape
    width, height = CURVE_PX
    items = "".join(
        f'<figure><img src="{e(c.png.name)}" alt="calibration curve of {e(c.label)}" '
        f'width="{width}" height="{height}"><figcaption>{e(c.label)}: {e(c.status)}, '
        f'{c.n_reviewed} verdicts'
        + (f", threshold {c.threshold:.3f}" if c.threshold is not None else "")
        + "</figcaption></figure>"
        for c in calibration)
    return ("<h2>Calibration: P(correct) against score per reviewed species</h2>"
            f"<p>From the reviews (docs/review.md); detections use a calibrated threshold where "
            f"one exists.</p>{items}")


def _skipped(out: Path, skipped: list[SkippedPath] | None) -> pa.Table:
    """Each source path not analysed by its URI, with the reason and its detail (the extension, a
    link's target, the key kept); when rebuilding, the report's own skipped.csv."""
    schema = pa.schema([("path", pa.string()), ("reason", pa.string()), ("detail", pa.string())])
    if skipped is None and (out / "skipped.csv").exists():
        with open(out / "skipped.csv", newline="", encoding="utf-8") as fh:
            rows = [{n: r.get(n) for n in schema.names} for r in csv.DictReader(fh)]
        return pa.Table.from_pylist(rows, schema)
    return pa.Table.from_pylist(
        [{"path": s.uri, "reason": s.reason, "detail": s.detail} for s in skipped or []], schema)


def _write_csv(path: Path, table: pa.Table) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.column_names)
        writer.writerows([list(r.values()) for r in table.to_pylist()])
