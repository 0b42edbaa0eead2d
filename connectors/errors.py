"""Errors raised by the connectors.

Two kinds, because the pipeline treats them differently (see docs/architecture.md):

- :class:`InputError` - one input (a recording, a metadata file) is bad. The pipeline logs it under
  its reason, marks that recording failed and carries on with the others.
- :class:`ConfigError` - the run's configuration or metadata is wrong (a malformed
  ``deployments.csv``, an unknown time zone, a source URI that cannot be opened). The run stops
  before any expensive work, because every result would be wrong or missing.
"""

from __future__ import annotations


class InputError(Exception):
    """A bad input file; ``str(e)`` is ``"<uri>: <reason>"``."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason

    def __reduce__(self):
        # Exceptions cross process boundaries (Ray workers) by pickling; the default reduce would
        # call __init__ with the single formatted message and fail.
        return (type(self), (self.uri, self.reason))


class ConfigError(Exception):
    """Bad configuration or metadata that must stop a run before expensive work."""
