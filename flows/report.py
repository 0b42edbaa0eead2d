"""The run report: counts per species and deployment, and every failure, as files and a Prefect
artifact (shown on the flow run's page)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.catalog import Catalog

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


def write_report(catalog: Catalog, results: str, run_id: str, counts: dict[str, Any]) -> str:
    """Write reports/<run_id>/{summary.md,failures.csv}; publish the summary as an artifact."""
    species = catalog.query_file("analyses/run_species_counts", [run_id])
    failures = catalog.query_file("analyses/run_failures", [run_id])
    out = Path(catalog.root) / "reports" / run_id
    out.mkdir(parents=True, exist_ok=True)
    counts_md = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in counts.items())
    summary = (
        f"# dawnchorus run {run_id}\n\n{counts_md}\n\n"
        f"## Detections (top-1, catalog threshold) per deployment and species\n\n"
        f"{markdown_table(species)}\n## Failures\n\n{markdown_table(failures)}"
    )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    with open(out / "failures.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(failures.column_names)
        writer.writerows([list(r.values()) for r in failures.to_pylist()])
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key="run-summary", markdown=summary,
                                 description=f"dawnchorus run {run_id}")
    except Exception:  # the files are the record; an artifact is a convenience
        log.warning("could not publish the run summary artifact", exc_info=True)
    log.info("report written to %s", out)
    return str(out / "summary.md")
