"""Every analysis file has a header a machine reads (purpose, grain, typed parameters with
defaults), its body reads each declared parameter, and values are parsed, checked and bound."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.analyses import all_analyses, analysis_names, load_analysis, parse_header
from connectors.errors import ConfigError

EXPECTED = {"agreement", "daily_richness", "detection_rate", "detections_local", "diel",
            "effort_by_day", "first_last", "run_failures", "run_species_counts",
            "species_accumulation", "species_by_hour", "species_by_night", "top1_per_window"}


def test_every_analysis_parses_and_ends_in_select_from_final():
    assert EXPECTED <= set(analysis_names())
    for a in all_analyses():
        assert a.purpose and a.grain.startswith("one row per"), a.name
        assert "select * from final" in a.sql, a.name


def test_each_analysis_reads_one_fingerprint_or_two_named_ones():
    for a in all_analyses():
        names = {p.name for p in a.parameters}
        if a.name == "agreement":
            assert {"fingerprint_a", "fingerprint_b"} <= names
        elif not a.name.startswith("run_"):
            assert "config_fingerprint" in names, a.name


def test_shared_parameter_names_mean_the_same_everywhere():
    # Analysis views share one set of variables: a name must have one type and one default.
    seen = {}
    for a in all_analyses():
        for p in a.parameters:
            if p.name in seen:
                assert seen[p.name] == (p.type, p.default, p.required), (a.name, p.name)
            seen[p.name] = (p.type, p.default, p.required)


def test_values_are_parsed_to_the_declared_type():
    diel = load_analysis("diel")
    values = diel.bind({"threshold": "0.7", "species": "Turdus merula"})
    assert values == {"config_fingerprint": None, "threshold": 0.7, "species": "Turdus merula",
                      "light_class": None, "qc": "exclude"}
    with pytest.raises(ConfigError, match="threshold: 'high' is not a double"):
        diel.bind({"threshold": "high"})
    with pytest.raises(ConfigError, match="no parameter 'speceis'.*species"):
        diel.bind({"speceis": "x"})
    with pytest.raises(ConfigError, match="fingerprint_a is required"):
        load_analysis("agreement").bind({"fingerprint_b": "b"})


def test_a_header_is_checked_against_its_body():
    body = "-- purpose: p\n-- grain: one row per x\n-- param: day date = '2024-05-01' -- a day\n"
    analysis = parse_header("x", body + "select getvariable('day') as d from final")
    assert analysis.parameters[0].default == date(2024, 5, 1)
    with pytest.raises(ConfigError, match="never reads getvariable\\('day'\\)"):
        parse_header("x", body + "select 1")
    # qc is read by the views the body uses (qc_choice, qc_failed_windows), not by the body.
    qc = "-- purpose: p\n-- grain: one row per x\n-- param: qc varchar = 'exclude' -- q\n"
    assert parse_header("x", qc + "select * from qc_failed_windows").parameters[0].name == "qc"
    with pytest.raises(ConfigError, match="never reads getvariable\\('qc'\\) nor the view qc_choice"):
        parse_header("x", qc + "select 1")
    with pytest.raises(ConfigError, match="line 3: expected '-- param: NAME TYPE"):
        parse_header("x", "-- purpose: p\n-- grain: one row per x\n-- param: day datetime\nselect 1")
    with pytest.raises(ConfigError, match="no '-- grain:' line"):
        parse_header("x", "-- purpose: p\nselect 1")


def test_an_unknown_analysis_names_the_known_ones():
    with pytest.raises(ConfigError, match="no analysis named 'nope'.*species_by_night"):
        load_analysis("nope")


def test_a_mistyped_analysis_name_gets_the_closest_one_before_any_sql():
    from connectors.analyses import check_analysis_name

    with pytest.raises(ConfigError, match="no analysis named 'species_by_nigth'; did you mean "
                                          "'species_by_night'\\?"):
        check_analysis_name("species_by_nigth")
    with pytest.raises(ConfigError, match="did you mean 'diel'"):
        load_analysis("deil")
    check_analysis_name("species_by_night")  # a name
    check_analysis_name("select * from detections")  # SQL goes on to the reader
    check_analysis_name("from species_by_night")
