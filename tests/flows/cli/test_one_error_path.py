"""One way a user error ends the CLI: exit 2 and one line, whichever layer raised it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.errors import ConfigError, InputError
from flows.cli.console import one_line, user_error
from flows.cli.main import main
from flows.pipeline.settings import RunSettings
from naturelm_core.backend import BackendError


def test_every_kind_of_user_error_is_recognised():
    with pytest.raises(ValidationError) as invalid:
        RunSettings(source="", results="r")
    for exc in (ConfigError("bad"), InputError("/a.wav", "not audio"), BackendError("no model"),
                invalid.value):
        assert user_error(exc) is exc


def test_a_user_error_wrapped_by_another_layer_is_found():
    cause = ConfigError("deployments.csv: bad zone")
    try:
        try:
            raise cause
        except ConfigError as exc:
            raise RuntimeError("task failed") from exc
    except RuntimeError as wrapped:
        assert user_error(wrapped) is cause


def test_a_bug_is_not_a_user_error():
    assert user_error(RuntimeError("boom")) is None
    try:
        try:
            raise ConfigError("handled")
        except ConfigError:
            raise KeyError("a bug while handling it")  # implicit context, not a wrap
    except KeyError as bug:
        assert user_error(bug) is None


def test_the_line_is_one_line():
    assert one_line(InputError("/a.wav", "not\naudio")) == "/a.wav: not audio"


def test_the_cli_ends_a_user_error_with_exit_2_and_one_line(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dawnchorus: error: ")
