"""The location-and-season species filter: ask BirdNET's meta-model about every deployment with
coordinates, once per BirdNET week of its windows' local dates, and keep the answers.

The answers go to `species_occurrence`; the `detections` view and the exports hide a species whose
occurrence at that deployment and week is below the catalog's `location_filter_threshold`
(BirdNET's 0.03), and `species_filter` shows each decision. Predictions are never deleted, so a
different threshold, or none, brings every hidden detection back. The include/exclude lists of
`deployments.csv` need no model: the views apply them directly.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from connectors.catalog import Catalog
from connectors.tables import SpeciesOccurrenceRow
from naturelm_core.birdnet.metamodel import MetaModel

log = logging.getLogger(__name__)

#: (deployment, week) pairs per transaction: 6,522 rows each.
PAIRS_PER_COMMIT = 64


def update_location_filter(results: str, run_id: str, model: Any = None) -> int:
    """Ask the meta-model about every (deployment, week) it has not answered; the pairs asked."""
    with Catalog(results) as catalog:
        todo = catalog.location_filter_todo()
        if not todo:
            return 0
        if model is None:

            model = MetaModel()
        for start in range(0, len(todo), PAIRS_PER_COMMIT):
            chunk = todo[start:start + PAIRS_PER_COMMIT]
            places = np.array([[lat, lon, week] for _, week, lat, lon in chunk], np.float32)
            probabilities = model.predict(places)  # (pairs, species)
            rows = [
                SpeciesOccurrenceRow(
                    deployment_id=deployment_id, week=int(week),
                    scientific_name=species.scientific_name, label=species.common_name,
                    occurrence=float(p), latitude=float(lat), longitude=float(lon),
                    model_id=model.model_id, run_id=run_id,
                )
                for (deployment_id, week, lat, lon), row in zip(chunk, probabilities)
                for species, p in zip(model.species, row)
            ]
            catalog.put_species_occurrence(rows)
    log.info("location filter: asked the meta-model about %d (deployment, week) pairs", len(todo))
    return len(todo)
