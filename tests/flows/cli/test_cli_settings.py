"""`dawnchorus run` exposes every RunSettings field, derived from the model: a flag per field whose
help is the field's description, defaults from the model, and a bad value refused in one line
naming the flag. The cases are derived from the model's fields, so a new field is covered (or
this test says which field it cannot cover)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from flows.cli.main import build_parser, main, settings_from_args
from flows.cli.settings_args import field_kind, flag_name
from flows.pipeline.settings import RunSettings

FIELDS = RunSettings.model_fields
REQUIRED = {name: f"/data/{name}" for name, info in FIELDS.items() if info.is_required()}
#: Fields whose validators accept only some values of their type: a valid non-default sample.
VALID_SAMPLES: dict[str, Any] = {"model": "placeholder"}


def sample(name: str) -> tuple[Any, list[str]]:
    """A valid value other than the default for field `name`, and the argv that gives it."""
    info = FIELDS[name]
    flag = flag_name(name, info)
    kind, detail = field_kind(info)
    default = info.get_default(call_default_factory=True)
    if name in VALID_SAMPLES:
        value = VALID_SAMPLES[name]
        return value, [flag, str(value)]
    if kind == "literal":
        value = next(c for c in detail if c != default)
        return value, [flag, value]
    if kind == "bool":
        return (not default), [flag if not default else "--no-" + flag[2:]]
    if kind == "list" and isinstance(detail, type) and issubclass(detail, BaseModel):
        # Records take JSON: a list of them in one flag, or one per flag; both add up.
        first = {"model": "placeholder", "pass_threshold": 0.25}
        second = {"model": "placeholder", "tasks": ["classify"], "candidates_top_k": 2}
        return (tuple(detail(**r) for r in (first, second)),
                [flag, json.dumps([first]), flag, json.dumps(second)])
    if kind == "list":
        value = tuple(default[:1]) if default else ("dep-a", "dep-b")
        return value, [arg for item in value for arg in (flag, item)]
    if kind == "mapping" and name == "model_options":  # options the default model (BirdNET) takes
        return ({"top_k": 5, "sensitivity": 1.25}, [flag, "top_k=5", flag, "sensitivity=1.25"])
    if kind == "mapping":
        return ({"max_concurrency": 5, "client_kwargs": {"endpoint_url": "http://minio:9000"}},
                [flag, "max_concurrency=5", flag, "client_kwargs.endpoint_url=http://minio:9000"])
    if detail is float:
        value = (default or 0.0) + 2.5
        return value, [flag, str(value)]
    if detail is int:
        value = (default or 0) + 3
        return value, [flag, str(value)]
    if detail is str:
        value = f"/somewhere/{name}"
        return value, [flag, value]
    raise AssertionError(f"no sample for RunSettings.{name} ({info.annotation}): add one to "
                         "VALID_SAMPLES or teach sample() its type")


def parse(argv: list[str]) -> RunSettings:
    return settings_from_args(build_parser().parse_args(["run", *argv]))


def required_argv() -> list[str]:
    return [arg for name, value in REQUIRED.items() for arg in (flag_name(name, FIELDS[name]), value)]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_field_has_a_flag_that_sets_it(name):
    value, argv = sample(name)
    settings = parse([*required_argv(), *argv] if name not in REQUIRED else
                     [*[a for n, v in REQUIRED.items() if n != name
                        for a in (flag_name(n, FIELDS[n]), v)], *argv])
    assert getattr(settings, name) == value
    if not FIELDS[name].is_required():
        assert value != FIELDS[name].get_default(call_default_factory=True)


def test_defaults_come_from_the_model():
    assert parse(required_argv()) == RunSettings(**REQUIRED)


def test_help_shows_each_field_with_its_description_and_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name, info in FIELDS.items():
        assert flag_name(name, info) in text, name
        assert " ".join(info.description.split()) in text, name
    assert "(default: 16)" in text and "(default: birdnet)" in text


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(["run", *argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("argv, flag", [
    (["--window-s", "ten"], "--window-s"),
    (["--window-s", "0"], "--window-s"),
    (["--model-actors", "0"], "--model-actors"),
    (["--actor-gpus", "-1"], "--actor-gpus"),
    (["--decode-cpus", "none"], "--decode-cpus"),
    (["--batch-size", "1.5"], "--batch-size"),
    (["--tail", "wrap"], "--tail"),
    (["--task", "sing"], "--task"),
    (["--model", "whisper"], "--model"),
    (["--storage-option", "endpoint"], "--storage-option"),
    (["--lease-wait-s", "-5"], "--lease-wait-s"),
    (["--hop-s", "20"], "--hop-s"),
    (["--unknown-flag", "1"], "--unknown-flag"),
])
def test_a_bad_value_is_one_line_naming_the_flag(argv, flag, capsys):
    code, err = run_cli([*required_argv(), *argv], capsys)
    assert code == 2
    assert "\n" not in err and err.startswith("dawnchorus: error:"), err
    assert re.search(rf"{re.escape(flag)}\b", err), err


def test_a_missing_required_flag_is_one_line(capsys):
    code, err = run_cli(["--source", "/data"], capsys)
    assert code == 2 and "\n" not in err and "--results" in err, err


def test_old_spellings_still_work():
    settings = parse([*required_argv(), "--model", "naturelm", "--option", "num_beams=3",
                      "--channels", "each", "--weights", "/w", "--llama", "/l"])
    assert settings.model_options == {"num_beams": 3, "weights": "/w", "llama": "/l"}
    assert settings.channel_policy == "each"


def test_a_password_in_the_catalog_url_is_never_shown(caplog):
    """Better in PGPASSWORD, but a password written into --catalog still never reaches the stored
    settings (runs.parameters, Prefect's parameters) or a log line."""
    import logging

    from flows.outputs.redact import install_log_redaction

    settings = parse([*required_argv(), "--catalog", "postgresql://team:s3cr3t-pw@db:5432/lake"])
    assert settings.catalog == "postgresql://team:s3cr3t-pw@db:5432/lake"  # kept to connect
    stored = settings.public_json()
    assert "s3cr3t-pw" not in stored and "postgresql://team:***@db:5432/lake" in stored
    install_log_redaction({f"secret_{i}": s for i, s in enumerate(settings.location.secrets())})
    with caplog.at_level(logging.INFO):
        logging.getLogger("dawnchorus.test").info("connecting to %s", settings.catalog)
    assert "connecting to postgresql://team:***@db:5432/lake" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


def _commands() -> list[str]:
    import argparse

    parser = build_parser()
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices]


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in _commands()],
                         ids=lambda argv: " ".join(argv))
def test_every_help_page_prints(argv, capsys):
    """`dawnchorus --help` once ended in a TypeError: argparse reads a help text's "95 % interval"
    as a %-format ("% i"). Every page a user can ask for prints and exits 0."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 0
    assert "usage: dawnchorus" in capsys.readouterr().out
