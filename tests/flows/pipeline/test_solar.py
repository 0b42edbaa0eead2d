"""Every window in the light it was recorded in (issue 21, item 1): sunrise and sunset per local
day, the sun's elevation and a light class per window, from the deployment's coordinates.

The reference here is independent of astral: the NOAA sunrise equation, written in this file
from the published spreadsheet formulas (Meeus' series), and polar day and night dates that are
facts of the place. A real catalog, written through the typed writer."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import pytest

from connectors.catalog import CatalogReader
from flows.pipeline.solar import solar_day, update_solar
from tests.support.seed_catalog import Call, Seed, analysis


def noaa_events(latitude: float, longitude: float, day: date) -> tuple[datetime, datetime]:
    """(sunrise, sunset) in UTC by the NOAA equations, refined once at each event's own time."""

    def at(minutes_utc: float, rising: bool) -> float:
        jd = (datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
              - datetime(2000, 1, 1, 12, tzinfo=timezone.utc)).total_seconds() / 86400 + 2451545.0
        jc = (jd + minutes_utc / 1440.0 - 2451545.0) / 36525.0
        mean_long = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360
        mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
        ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
        m = math.radians(mean_anom)
        centre = (math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
                  + math.sin(2 * m) * (0.019993 - 0.000101 * jc) + math.sin(3 * m) * 0.000289)
        omega = math.radians(125.04 - 1934.136 * jc)
        apparent = mean_long + centre - 0.00569 - 0.00478 * math.sin(omega)
        obliquity = (23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
                     + 0.00256 * math.cos(omega))
        decl = math.asin(math.sin(math.radians(obliquity)) * math.sin(math.radians(apparent)))
        y = math.tan(math.radians(obliquity / 2)) ** 2
        l0 = math.radians(mean_long)
        eq_time = 4 * math.degrees(y * math.sin(2 * l0) - 2 * ecc * math.sin(m)
                                   + 4 * ecc * y * math.sin(m) * math.cos(2 * l0)
                                   - 0.5 * y * y * math.sin(4 * l0) - 1.25 * ecc * ecc * math.sin(2 * m))
        lat = math.radians(latitude)
        ha = math.degrees(math.acos(math.cos(math.radians(90.833)) / (math.cos(lat) * math.cos(decl))
                                    - math.tan(lat) * math.tan(decl)))
        noon = 720 - 4 * longitude - eq_time
        return noon - 4 * ha if rising else noon + 4 * ha

    base = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    out = []
    for rising in (True, False):
        minutes = at(720 - 4 * longitude, rising)
        minutes = at(minutes, rising)  # refined at the event's own time
        out.append(base + timedelta(minutes=minutes))
    return out[0], out[1]


@pytest.mark.parametrize("place, tz_name, latitude, longitude, day", [
    ("State College, the spring-forward day", "America/New_York", 40.79, -77.86, date(2024, 3, 10)),
    ("State College, the fall-back day", "America/New_York", 40.79, -77.86, date(2024, 11, 3)),
    ("Vigo, far west of its zone's meridian", "Europe/Madrid", 42.24, -8.72, date(2024, 6, 21)),
    ("Hobart, southern winter", "Australia/Hobart", -42.88, 147.33, date(2024, 6, 21)),
    ("Tromso before the midnight sun", "Europe/Oslo", 69.65, 18.96, date(2024, 4, 20)),
])
def test_sunrise_and_sunset_agree_with_the_noaa_equations_within_a_minute(place, tz_name, latitude,
                                                                           longitude, day):
    row = solar_day("dep", day, tz_name, latitude, longitude)
    rise, set_ = noaa_events(latitude, longitude, day)
    assert abs((row.sunrise_utc - rise).total_seconds()) < 60, (place, row.sunrise_utc, rise)
    assert abs((row.sunset_utc - set_).total_seconds()) < 60, (place, row.sunset_utc, set_)
    assert row.polar is None and row.computed_by.startswith("astral ")
    assert row.civil_dawn_utc < row.sunrise_utc < row.noon_utc < row.sunset_utc < row.civil_dusk_utc


def test_polar_day_and_polar_night_at_69_north():
    june = solar_day("tromso", date(2024, 6, 21), "Europe/Oslo", 69.65, 18.96)
    december = solar_day("tromso", date(2024, 12, 21), "Europe/Oslo", 69.65, 18.96)
    assert (june.polar, june.sunrise_utc, june.sunset_utc, june.civil_dawn_utc) == ("day", None, None, None)
    assert (december.polar, december.sunrise_utc, december.sunset_utc) == ("night", None, None)
    # Tromso's polar night still has civil twilight around noon.
    assert december.civil_dawn_utc is not None and december.civil_dawn_utc < december.noon_utc


def test_windows_and_detections_carry_their_light_and_a_new_catalog_gains_it(tmp_path):
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("pa", timezone="America/New_York", latitude=40.79, longitude=-77.86)
    seed.deployment("tromso", timezone="Europe/Oslo", latitude=69.65, longitude=18.96)
    seed.deployment("nowhere", timezone="UTC")  # no coordinates
    day = date(2024, 5, 15)
    rise, _ = noaa_events(40.79, -77.86, day)
    start = rise - timedelta(minutes=65)  # 10-minute windows: middles at sunrise - 60, - 50, ...
    robin = Call("Turdus migratorius", "American Robin", 0.9)
    seed.recording("pa", start, 13, calls={12: [robin]}, window_s=600.0)
    seed.recording("tromso", datetime(2024, 6, 21, 22, 0, tzinfo=timezone.utc), 1, window_s=600.0)
    seed.recording("nowhere", datetime(2024, 5, 15, 4, 0, tzinfo=timezone.utc), 1, window_s=600.0)
    with CatalogReader(root) as reader:  # before any solar computation: empty, not wrong
        assert reader.query("select count(light_class) as n from window_light").to_pylist() == [{"n": 0}]
    added = update_solar(root)
    assert added["deployments_without_coordinates"] == ["nowhere"] and added["days"] == 2
    assert update_solar(root)["days"] == 0  # nothing computed twice
    with CatalogReader(root) as reader:
        light = reader.query("select w.deployment_id, w.window_index, l.light_class, l.sun_elevation_deg, "
                             "l.minutes_from_sunrise, l.minutes_from_sunset from window_light as l "
                             "join windows as w using (recording_id, config_fingerprint, channel, "
                             "window_index) order by all").to_pylist()
        heard = reader.query("select light_class, minutes_from_sunrise from detections").to_pylist()
    pa = [r for r in light if r["deployment_id"] == "pa"]
    # Window k's middle is at sunrise - 60 + 10 k minutes.
    for r in pa:
        assert r["minutes_from_sunrise"] == pytest.approx(-60 + 10 * r["window_index"], abs=1.0)
        assert r["minutes_from_sunset"] < -700
    classes = [r["light_class"] for r in pa]
    assert classes[:2] == ["nautical_twilight", "nautical_twilight"]  # 60 and 50 min before sunrise
    assert classes[4:6] == ["civil_twilight"] * 2 and classes[7:] == ["day"] * 6  # -20, -10; +10 on
    assert all(-12 < r["sun_elevation_deg"] < 30 for r in pa)
    (north,) = [r for r in light if r["deployment_id"] == "tromso"]
    assert north["light_class"] == "polar_day" and north["minutes_from_sunrise"] is None
    assert north["sun_elevation_deg"] > 0  # the midnight sun
    (nowhere,) = [r for r in light if r["deployment_id"] == "nowhere"]
    assert nowhere["light_class"] is None and nowhere["sun_elevation_deg"] is None
    assert heard == [{"light_class": "day", "minutes_from_sunrise": pytest.approx(60.0, abs=1.0)}]


def test_activity_in_solar_time_and_diel_by_light(tmp_path):
    """The same dawn song, thirty minutes after sunrise, in May and in late October (clock times
    about two hours apart): one bin of activity_by_sun; diel's light filter keeps day only."""
    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("pa", timezone="America/New_York", latitude=40.79, longitude=-77.86)
    robin = Call("Turdus migratorius", "American Robin", 0.9)
    owl = Call("Strix varia", "Barred Owl", 0.8)
    for day in (date(2024, 5, 15), date(2024, 10, 28)):
        rise, _ = noaa_events(40.79, -77.86, day)
        # Windows of 10 min; the robin sings in the one whose middle is 35 min after sunrise,
        # the owl in one 3 h before sunrise (night).
        seed.recording("pa", rise + timedelta(minutes=30), 1, calls={0: [robin]}, window_s=600.0)
        seed.recording("pa", rise - timedelta(hours=3), 1, calls={0: [owl]}, window_s=600.0)
    update_solar(root)
    rows = analysis(root, "activity_by_sun", bin_minutes=30)
    robin_bins = [(r["bin_start_min"], r["detections"]) for r in rows if r["label"] == "American Robin"]
    assert robin_bins == [(30, 2)]  # both mornings in one bin, though ~2 h apart on the clock
    (robin_row,) = [r for r in rows if r["label"] == "American Robin"]
    assert robin_row["effort_hours"] == pytest.approx(2 * 600 / 3600)
    owl_bins = [r["bin_start_min"] for r in rows if r["label"] == "Barred Owl"]
    assert owl_bins == [-180]
    by_sunset = analysis(root, "activity_by_sun", relative_to="sunset", bin_minutes=60)
    assert all(r["bin_start_min"] < 0 for r in by_sunset)  # everything before that day's sunset
    day_only = analysis(root, "diel", light_class="day")
    assert {r["label"] for r in day_only} == {"American Robin"}
    night_only = analysis(root, "diel", light_class="night")
    assert {r["label"] for r in night_only} == {"Barred Owl"}
    assert sum(r["effort_hours"] for r in night_only) == pytest.approx(2 * 600 / 3600)
    from flows.cli.main import main

    assert main(["export", "csv", "--results", str(root), "--out", str(tmp_path / "night"),
                 "--light-class", "night"]) == 0
    exported = "".join(p.read_text() for p in (tmp_path / "night").rglob("*.csv"))
    assert "Barred Owl" in exported and "American Robin" not in exported
    assert main(["export", "csv", "--results", str(root), "--out", str(tmp_path / "x"),
                 "--light-class", "dusk"]) == 2  # not a class: one line, exit 2
    nights = analysis(root, "species_by_night", light_class="night")
    assert {r["label"] for r in nights} == {"Barred Owl"}
    assert all(r["effort_hours"] == pytest.approx(600 / 3600) for r in nights)  # one night window each


def test_the_report_draws_activity_against_sunrise_or_says_why_not(tmp_path):
    from flows.outputs.plots import SIZE_PX, sunrise_activity
    from flows.outputs.report import _plot_reason

    rows = [{"site_id": "pa", "label": "American Robin", "scientific_name": "Turdus migratorius",
             "bin_start_min": b, "detections": n, "effort_hours": 1.0} for b, n in ((-30, 1), (0, 4), (30, 6))]
    drawn = sunrise_activity(rows, tmp_path / "sunrise.png")
    empty = sunrise_activity([], tmp_path / "empty.png", why="")
    from PIL import Image

    assert Image.open(drawn).size == SIZE_PX == Image.open(empty).size
    assert drawn.stat().st_size > empty.stat().st_size  # lines, not a sentence
    # With detections but no sunrise, the picture gives its own reason (coordinates), not
    # "no detections".
    assert _plot_reason("activity_by_sun", "no detections above the threshold of 0.5",
                        {"detections": 3}) == ""
    assert _plot_reason("activity_by_sun", "no windows analysed yet", {"detections": 0}) == (
        "no windows analysed yet")


def test_dawnchorus_maintain_gives_an_older_catalog_its_solar_time(tmp_path, capsys):
    from flows.cli.main import main

    root = tmp_path / "results"
    seed = Seed(root)
    seed.deployment("pa", timezone="America/New_York", latitude=40.79, longitude=-77.86)
    seed.recording("pa", datetime(2024, 5, 15, 10, 0, tzinfo=timezone.utc), 2, window_s=600.0)
    assert main(["maintain", "--results", str(root)]) == 0
    with CatalogReader(root) as reader:
        light = reader.query("select light_class from window_light").to_pylist()
    assert light == [{"light_class": "day"}] * 2
