"""The Prefect flows `nightly` (new and changed recordings, scheduled) and `backfill` (chosen
deployments or model): each one `run_pipeline` inside a flow run (prefect.yaml's entrypoints).
The pipeline itself, and `run_plain` (the same steps with no Prefect API), are in `run.py`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.pipeline.run import run_pipeline
from flows.pipeline.settings import RunSettings


def prefect_api_configured() -> bool:
    """True when a Prefect API (a server, Prefect Cloud) is configured for this process."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@flow(name="nightly", log_prints=False)
def nightly(settings: RunSettings, run_id: str | None = None) -> dict[str, Any]:
    """Analyse every new or changed recording under the source root (scheduled nightly)."""
    return run_pipeline(settings, "nightly", run_id)


@flow(name="backfill", log_prints=False)
def backfill(settings: RunSettings, run_id: str | None = None) -> dict[str, Any]:
    """Analyse chosen deployments (settings.deployments), e.g. with a new model or prompt."""
    return run_pipeline(settings, "backfill", run_id)
