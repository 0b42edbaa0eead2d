"""The run report: counts per species and deployment, and every failure, as files and a Prefect
artifact (shown on the flow run's page)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.catalog import CatalogReader
from connectors.storage import SkippedPath

log = logging.getLogger(__name__)


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


def write_report(results: str, run_id: str, counts: dict[str, Any],
                 skipped: list[SkippedPath] | None = None) -> str:
    """Write reports/<run_id>/{summary.md,failures.csv,skipped.csv}; publish the summary as an
    artifact. `skipped` lists the source paths that were not analysed, each with its reason."""
    with CatalogReader(results) as catalog:
        species = catalog.analysis("run_species_counts", {"run_id": run_id})
        failures = catalog.analysis("run_failures", {"run_id": run_id})
        out = catalog.root / "reports" / run_id
    skipped_rows = pa.Table.from_pylist(
        [{"path": s.uri, "reason": s.reason, "detail": s.detail} for s in skipped or []],
        pa.schema([("path", pa.string()), ("reason", pa.string()), ("detail", pa.string())]),
    )
    out.mkdir(parents=True, exist_ok=True)
    counts_md = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in counts.items())
    summary = (
        f"# dawnchorus run {run_id}\n\n{counts_md}\n\n"
        f"## Detections (top-1, catalog threshold) per deployment and species\n\n"
        f"{markdown_table(species)}\n## Failures\n\n{markdown_table(failures)}"
        f"\n## Source paths not analysed\n\n{markdown_table(skipped_rows)}"
    )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    _write_csv(out / "failures.csv", failures)
    _write_csv(out / "skipped.csv", skipped_rows)
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key="run-summary", markdown=summary,
                                 description=f"dawnchorus run {run_id}")
    except Exception:  # the files are the record; an artifact is a convenience
        log.warning("could not publish the run summary artifact", exc_info=True)
    log.info("report written to %s", out)
    return str(out / "summary.md")


def _write_csv(path: Path, table: pa.Table) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.column_names)
        writer.writerows([list(r.values()) for r in table.to_pylist()])
