"""A model that does no work: one constant answer per task and window, at BirdNET's rate and window.

For measuring the pipeline's own cost (decode, transport, commit) with nothing else on the CPU
(`bench/`): a run with it takes what the pipeline takes. Its answers mean nothing (score 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from naturelm_core.backend import BackendError, ModelBackend, Prediction, check_batch, check_tasks

SUPPORTED_TASKS = ("detect", "classify")


class NullBackend(ModelBackend):
    """Answers every task of every window with audio at once: label "none", score 0.

    Options (keyword): sample_rate_hz (default 48 kHz, BirdNET's), the rate the pipeline
    resamples to. Its native window is BirdNET's 3 s.
    """

    name = "null"
    native_window_s = 3.0

    def __init__(self, *, sample_rate_hz: int = 48_000):
        if sample_rate_hz < 1:
            raise BackendError(f"sample_rate_hz must be >= 1, got {sample_rate_hz}")
        self.sample_rate_hz = int(sample_rate_hz)

    @property
    def model_id(self) -> str:
        return "null-v1@none"

    def settings(self) -> dict[str, Any]:
        return {"sample_rate_hz": self.sample_rate_hz}

    def predict(
        self, audio: np.ndarray, valid_samples: np.ndarray, tasks: Sequence[str]
    ) -> list[Prediction]:
        wanted = check_tasks("null", tasks, SUPPORTED_TASKS)
        check_batch(audio, valid_samples)
        return [
            Prediction(item=int(item), task=task, prompt_id=f"null:{task}", answer_text="none",
                       label="animal" if task == "detect" else "none", scientific_name=None,
                       score=0.0)
            for item in np.flatnonzero(valid_samples > 0) for task in wanted
        ]
