"""Run settings validate before any work, and the fingerprint follows what changes answers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.pipeline.settings import RunSettings, config_fingerprint, resolve_settings


def make(**overrides) -> RunSettings:
    return resolve_settings(RunSettings(**{"source": "src", "results": "res", "window_s": 10.0,
                                           **overrides}), 3.0)


@pytest.mark.parametrize("bad, field", [
    ({"source": ""}, "source"),
    ({"results": ""}, "results"),
    ({"hop_s": 12.0}, "hop_s"),
    ({"window_s": 0}, "window_s"),
    ({"tasks": ("detect", "sing")}, "tasks"),
    ({"model": "whisper"}, "model"),
    ({"tail": "wrap"}, "tail"),
    ({"unknown_option": 1}, "unknown_option"),
])
def test_bad_settings_are_refused_naming_the_field(bad, field):
    with pytest.raises(ValidationError, match=field):
        make(**bad)


def test_fingerprint_changes_with_what_changes_answers_only():
    base = config_fingerprint(make(), "m@1", {"top_k": 3})
    assert config_fingerprint(make(), "m@1", {"top_k": 3}) == base
    for settings, model_id, options in [
        (make(window_s=5.0), "m@1", {"top_k": 3}),
        (make(hop_s=5.0), "m@1", {"top_k": 3}),
        (make(tail="drop"), "m@1", {"top_k": 3}),
        (make(channel_policy="each"), "m@1", {"top_k": 3}),
        (make(tasks=("detect",)), "m@1", {"top_k": 3}),
        (make(), "m@2", {"top_k": 3}),
        (make(), "m@1", {"top_k": 5}),
    ]:
        assert config_fingerprint(settings, model_id, options) != base
    # Where results go and how work is split do not change answers.
    same = make(results="elsewhere", windows_per_unit=7, batch_size=3, model_actors=2)
    assert config_fingerprint(same, "m@1", {"top_k": 3}) == base
    # hop_s=None means hop = window.
    assert config_fingerprint(make(hop_s=10.0), "m@1", {"top_k": 3}) == base
