"""The model layer: the backend interface, BirdNET, NatureLM-audio. Never imports prefect or ray."""

from naturelm_core.backend import TASKS, BackendError, ModelBackend, Prediction, load_backend

__all__ = ["TASKS", "BackendError", "ModelBackend", "Prediction", "load_backend"]
