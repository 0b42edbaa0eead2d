"""The run report: `<results>/reports/<run_id>/`, one self-contained folder a person opens.

`index.html` leads with what was heard: one card per species (`flows.outputs.report_cards`: common and
scientific name, detections, sites, first and last local time, its best detections each with a
spectrogram thumbnail and the window's audio, written into the folder), then activity (diel
activity, detections per night and site), effort per deployment and night, failures per
deployment, and last the run's own facts and counters as tables. Nothing on the page is fetched
from elsewhere (no CDN, no server): the folder can be copied, mailed or opened offline.

When nothing is shown, the page says why ("no detections above the threshold of 0.5; 12 below
it", "the species filters hide every species above it").

- also `summary.md` (the same tables), `failures.csv`, `skipped.csv`;
- the same as Prefect artifacts on the flow run (markdown tables, a link to index.html).

The cards, the pictures and the effort cover everything the catalog holds under the run's
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from connectors.catalog import CatalogReader
from connectors.catalog.reads import runs as catalog_runs
from connectors.errors import ConfigError
from connectors.location import ResultsLocation
from connectors.storage import SkippedPath
from flows.outputs.calibration.curves import SIZE_PX as CURVE_PX
from flows.outputs.calibration.curves import calibration_plots
from flows.outputs.plots import SIZE_PX
from flows.outputs.report_cards import _time
from flows.outputs.report_qc import qc_html, qc_markdown
from flows.outputs import plots
from flows.outputs import privacy
from flows.outputs import report_cards

log = logging.getLogger(__name__)

#: (file, title, function in flows.outputs.plots, the analysis it draws)
PLOTS = (
    ("diel.png", "Diel activity", "diel_heatmap", "diel"),
    ("nights.png", "Detections per night and site", "detections_per_night", "species_by_night"),
    ("effort.png", "Effort per day", "effort_per_day", "effort_by_day"),
    ("accumulation.png", "Species accumulation", "species_accumulation", "species_accumulation"),
    ("sunrise.png", "Activity against sunrise", "sunrise_activity", "activity_by_sun"),
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


def html_table(table: pa.Table, limit: int = 200, empty: str = "none") -> str:
    """An HTML table of the first `limit` rows; `empty` says why when there are none."""
    if table.num_rows == 0:
        return f'<p class="empty">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(_words(n))}</th>" for n in table.column_names)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_readable(v))}</td>" for v in r.values())
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
                 threshold: float | None = None, location_threshold: float | None = None,
                 storage_options: dict[str, Any] | None = None) -> str:
    """Write reports/<run_id>/ and publish its artifacts; the path of its index.html.

    `counts` default to what the run recorded; `skipped` lists the source paths that were not
    analysed, each with its reason (when rebuilding, the report's own skipped.csv is kept).
    `announce(run_id, summary_markdown, index)` is told where the report is (a flow run's
    artifacts, `flows.pipeline.run`). `threshold` and `location_threshold` replace the
    catalog's, as `dawnchorus query`'s do; `storage_options` open the recordings the species
    cards cut their clips from (default: the results location's).
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
        top = {"top_species": report_cards.TOP_SPECIES}
        if fingerprint in reader.fingerprints:
            tables = {name: reader.analysis(name, scope) for _, _, _, name in PLOTS}
            heard_species = reader.analysis("report_species", {**scope, **top}).to_pylist()
            best = reader.analysis("report_best_detections",
                                   {**scope, **top,
                                    "per_species": report_cards.BEST_PER_SPECIES}).to_pylist()
            heard = reader.analysis("report_heard_counts", scope).to_pylist()[0]
            effort = reader.analysis("report_effort_by_night", scope)
            qc = reader.analysis("qc_by_night", scope)
            privacy.mark_withheld_clips(reader, best)  # docs/privacy.md
        else:  # the run committed no window (or knew no model): nothing to draw yet
            tables = {name: pa.table({}) for _, _, _, name in PLOTS}
            heard_species, best, heard, effort = [], [], None, pa.table({})
            qc = pa.table({})
        speech = privacy.speech_report(reader, run_id)
    out, publish = _report_folder(location, run_id)
    out.mkdir(parents=True, exist_ok=True)
    skipped_rows = _skipped(out, skipped)
    why = empty_reason(heard)
    cards = report_cards.build_cards(heard_species, best, out,
                                     storage_options if storage_options is not None
                                     else location.storage_options)
    species_total = int(heard_species[0]["species_total"]) if heard_species else 0

    images = [(file, title, getattr(plots, fn)(tables[name].to_pylist(), out / file,
                                                why=_plot_reason(name, why, heard)))
              for file, title, fn, name in PLOTS]

    calibration = calibration_plots(location, out, fingerprint) if fingerprint else []
    nights = tables["species_by_night"]
    headline = heard_headline(heard)

    warnings = pa.table({"warning": list(run.get("warnings") or [])})
    summary = (
        f"# dawnchorus run {run_id}\n\n{headline}.\n\n"
        f"- status: {run['status']}\n- model: {run['model_id']}\n- fingerprint: {fingerprint}\n\n"
        f"## What was heard (top {report_cards.TOP_SPECIES} species)\n\n"
        f"{markdown_table(_species_table(cards)) if cards else why + chr(10)}\n"
        f"## Strong predictions hidden by filters (score >= 0.5; dawnchorus query "
        f"--location-threshold 0 shows location-filtered ones)\n\n{markdown_table(hidden)}\n"
        f"## Source check warnings (docs/source.md)\n\n{markdown_table(warnings)}\n"
        f"## Detections per deployment and species (this run's windows)\n\n{markdown_table(species)}\n"
        f"## Species by site and night (fingerprint {fingerprint})\n\n{markdown_table(nights)}\n"
        f"## Effort per deployment and night\n\n{markdown_table(effort)}\n"
        f"{qc_markdown(qc, markdown_table)}"
        f"## Human speech (privacy gate, docs/privacy.md)\n\n{markdown_table(speech)}\n"
        f"## Failures\n\n{markdown_table(failures)}"
        f"\n## Source paths not analysed\n\n{markdown_table(skipped_rows)}\n"
        + "".join(f"## {title}\n\n{markdown_table(table)}\n"
                  for title, table in counter_tables(counts))
    )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    _write_csv(out / "failures.csv", failures)
    _write_csv(out / "skipped.csv", skipped_rows)
    index = out / "index.html"
    page = ReportPage(run=run, counts=counts, headline=headline,
                      cards=report_cards.cards_html(cards, why, species_total), images=images,
                      species=species, nights=nights, effort=effort, failures=failures,
                      skipped=skipped_rows, calibration=calibration, hidden=hidden,
                      warnings=warnings, qc=qc, speech=speech)
    index.write_text(_html(page), encoding="utf-8")
    where = publish(index)
    if announce is not None:
        announce(run_id, summary, where)
    log.info("report written to %s", where)
    return where


def hidden_by_filters(results: str | ResultsLocation, run_id: str) -> list[dict[str, Any]]:
    """A run's strong predictions the species filters hid (`run_hidden_by_filters`)."""
    with CatalogReader(ResultsLocation.resolve(results)) as reader:
        return reader.analysis("run_hidden_by_filters", {"run_id": run_id}).to_pylist()


def empty_reason(heard: dict[str, Any] | None) -> str:
    """Why the species cards (and the pictures of detections) are empty, in one sentence."""
    if heard is None or not heard["windows_analysed"]:
        return "no windows analysed yet under this run's model and settings"
    threshold = f"{heard['threshold']:g}"
    if not heard["above_threshold"]:
        return (f"no detections above the threshold of {threshold}; "
                f"{heard['below_threshold']} below it")
    if not heard["detections"]:
        return (f"no detections shown: {heard['above_threshold']} answers reach the threshold of "
                f"{threshold}, all of species the species filters hide "
                "(dawnchorus query \"from species_filter where not kept\")")
    return f"no detections above the threshold of {threshold}"


def heard_headline(heard: dict[str, Any] | None) -> str:
    """What was heard in ecological terms, from a `report_heard_counts` row: "45 detections of 14
    species at 2 sites, threshold 0.5; 3 species hidden by the species filters"."""
    if heard is None:
        return "nothing analysed yet"

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    line = (f"{n(heard['detections'], 'detection')} of {heard['species']} species at "
            f"{n(heard['sites'], 'site')}, threshold {heard['threshold']:g}")
    if heard["species_hidden"]:
        line += f"; {heard['species_hidden']} species hidden by the species filters"
    return line


def _plot_reason(analysis: str, why: str, heard: dict[str, Any] | None = None) -> str:
    """What an empty picture says: effort pictures are empty only when nothing was analysed;
    the sunrise picture, with detections, only when none has a sunrise (its own sentence)."""
    if analysis == "activity_by_sun" and heard and heard["detections"]:
        return ""
    if analysis in ("effort_by_day", "species_accumulation"):
        return "no windows analysed yet"
    return why


def _species_table(cards: list) -> pa.Table:

    return pa.Table.from_pylist([
        {"species": c.label, "scientific name": c.scientific_name, "detections": c.detections,
         "sites": c.sites, "first (local)": _time(c.first_local),
         "last (local)": _time(c.last_local), "best score": round(c.max_score, 3)}
        for c in cards])


def _words(key: str) -> str:
    return str(key).replace("_", " ")


def _readable(value: Any) -> str:
    """A counter's value as text a person reads (never a dict's or a list's repr)."""
    if isinstance(value, dict):
        return ", ".join(f"{_words(k)}: {_readable(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return "; ".join(_readable(v) for v in value) or "none"
    if value is None:
        return ""
    return str(value)


def counter_tables(counts: dict[str, Any]) -> list[tuple[str, pa.Table]]:
    """The run's counters as tables: one of the plain counters (name, value), and one per nested
    counter (catalog maintenance before and after, each cascade stage), with readable names."""
    plain, tables = [], []
    for key, value in counts.items():
        if key == "report":
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            # e.g. catalog maintenance: {"before": {"files": ..}, "after": {...}, "tables_merged": n}
            rows = [{"": _words(k), **{_words(n): x for n, x in v.items()}} for k, v in value.items()]
            tables.append((_words(key), pa.Table.from_pylist(rows)))
        elif isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            nested = {k: v for k, v in value.items() if isinstance(v, dict)}
            rows = [{"": _words(k), **{_words(n): x for n, x in v.items()}} for k, v in nested.items()]
            tables.append((_words(key), pa.Table.from_pylist(rows)))
            for k, v in value.items():
                if not isinstance(v, dict):
                    plain.append({"counter": f"{_words(key)}: {_words(k)}", "value": _readable(v)})
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            rows = [{_words(n): _readable(x) for n, x in v.items()} for v in value]
            tables.append((_words(key), pa.Table.from_pylist(rows)))
        else:
            plain.append({"counter": _words(key), "value": _readable(value)})
    return [("run counters", pa.Table.from_pylist(plain, pa.schema(
        [("counter", pa.string()), ("value", pa.string())])))] + tables


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


@dataclass(frozen=True)
class ReportPage:
    """What index.html shows, in the order it shows it."""

    run: dict[str, Any]
    counts: dict[str, Any]
    headline: str
    cards: str  # the "what was heard" section (flows.report_cards.cards_html)
    images: list
    species: pa.Table
    nights: pa.Table
    effort: pa.Table
    failures: pa.Table
    skipped: pa.Table
    calibration: list = field(default_factory=list)
    hidden: pa.Table = field(default_factory=lambda: pa.table({}))  # strong predictions filters hid
    warnings: pa.Table = field(default_factory=lambda: pa.table({}))  # the source check's
    qc: pa.Table = field(default_factory=lambda: pa.table({}))  # quality per deployment and night
    speech: pa.Table = field(default_factory=lambda: pa.table({}))  # the privacy gate's counts


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1200px; }
h1 { margin-bottom: 0.2em; } .headline { font-size: 1.15em; margin-top: 0; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
figure { margin: 1em 0; } .empty { font-style: italic; color: #555; }
.cards { display: flex; flex-direction: column; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.9em; background: #fafafa; }
.card h3 { margin: 0.1em 0 0.3em; } .sci { font-weight: normal; color: #555; }
.facts { margin: 0 0 0.5em; font-size: 0.9em; }
.clip { display: inline-block; margin: 0.3em 0.5em 0.3em 0; vertical-align: top; width: 240px; }
.clip img { display: block; } .clip audio { width: 240px; height: 32px; }
.clip figcaption { font-size: 0.8em; color: #444; }
"""


def _html(page: ReportPage) -> str:
    e = html.escape
    run = page.run
    facts = [("status", run["status"]), ("flow", run["flow"]), ("model", run["model_id"]),
             ("fingerprint", run["config_fingerprint"]), ("started", run["started_at"]),
             ("finished", run["finished_at"])]
    facts_html = "".join(f"<tr><th>{e(k)}</th><td>{e(_readable(v))}</td></tr>" for k, v in facts)

    width, height = SIZE_PX
    figures = {file: (f'<figure><a href="{e(file)}"><img src="{e(file)}" alt="{e(title)}" '
                      f'width="{width}" height="{height}"></a><figcaption>{e(title)}</figcaption>'
                      "</figure>") for file, title, _ in page.images}
    counters = "".join(f"<h3>{e(title[:1].upper() + title[1:])}</h3>{html_table(table)}"
                       for title, table in counter_tables(page.counts))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dawnchorus run {e(run['run_id'])}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>dawnchorus report</h1>
<p class="headline">{e(page.headline)}</p>
<p>Run {e(run['run_id'])} ({e(_readable(run['status']))}). Cards, pictures and effort: everything
analysed with this run's model and settings (fingerprint {e(_readable(run['config_fingerprint']))});
counters and failures: this run. Times are local to each site.
<a href="summary.md">summary.md</a> · <a href="failures.csv">failures.csv</a> ·
<a href="skipped.csv">skipped.csv</a></p>
{page.cards}
<section id="hidden"><h2>Strong predictions hidden by filters</h2>
<p>Score 0.5 or more, hidden from detections by a species filter (which, and why);
<code>dawnchorus query --location-threshold 0</code> shows the location-filtered ones.</p>
{html_table(page.hidden, empty="no prediction of 0.5 or more was hidden by a filter")}
</section>
<section id="warnings"><h2>Source check warnings</h2>
{html_table(page.warnings, empty="the source check found nothing to warn about")}
</section>
<section id="activity"><h2>Activity</h2>
{figures.get("diel.png", "")}
{figures.get("sunrise.png", "")}
{figures.get("nights.png", "")}
<h3>Species by site and night</h3>
{html_table(page.nights)}
</section>
<section id="effort"><h2>Effort per deployment and night</h2>
{html_table(page.effort)}
<h2>Human speech (privacy gate)</h2>
<p>Windows marked as human speech keep their predictions and effort; while the gate is on their
audio is never served (docs/privacy.md). Windows analysed before the gate are "not checked".</p>
{html_table(page.speech, empty="no window of this run was checked for speech")}
{figures.get("effort.png", "")}
{figures.get("accumulation.png", "")}
</section>
{qc_html(page.qc, html_table)}{_calibration_html(page.calibration)}
<section id="failures"><h2>Failures</h2>
{html_table(page.failures, empty="nothing failed in this run")}
<h3>Source paths not analysed</h3>
{html_table(page.skipped, empty="every source path was an audio file the run could plan")}
</section>
<section id="run"><h2>This run</h2>
<table>{facts_html}</table>
<h3>Detections per deployment and species (this run's windows)</h3>
{html_table(page.species, empty="no detections in this run's windows")}
{counters}
</section>
</body>
</html>
"""


def _calibration_html(calibration: list) -> str:
    """Each reviewed species' calibration curve (`dawnchorus calibrate`), if any."""
    if not calibration:
        return ""

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
