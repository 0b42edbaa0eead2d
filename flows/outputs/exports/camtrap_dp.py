"""A Camtrap DP 1.0.2 data package of detections: the format GBIF ingests from camera traps, which
the community is extending to acoustic recorders.

Mapping: deployments = deployments (recorder as cameraModel); media = recordings (audio, scheduled
recording is `timeLapse`, the file's URI as filePath); observations = detections at media level,
`classificationMethod` machine, the model as `classifiedBy`, the score as
`classificationProbability`. Camtrap DP requires coordinates and a period for every deployment
and a timestamp for every medium: a deployment without coordinates, or a recording without a start
time, cannot be described, so it and its rows are left out and counted in the returned notes.

Target: Camtrap DP 1.0.2 (profile and table schemas at
https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/...). `validate_package` checks a package
offline against the published files, kept unchanged in `camtrap-dp-1.0.2/` (MIT licence): the
profile with jsonschema, the tables (types, constraints, keys) with frictionless.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flows.outputs.exports.cells import spreadsheet_text

log = logging.getLogger(__name__)

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
SCHEMAS = Path(__file__).parent / f"camtrap-dp-{VERSION}"
TABLES = ("deployments", "media", "observations")
MEDIATYPES = {"WAV": "audio/wav", "FLAC": "audio/flac", "MP3": "audio/mpeg", "OGG": "audio/ogg"}


def _schema_fields(table: str) -> list[dict[str, Any]]:
    schema = json.loads((SCHEMAS / f"{table}-table-schema.json").read_text(encoding="utf-8"))
    return schema["fields"]


def _fields(table: str) -> list[str]:
    return [f["name"] for f in _schema_fields(table)]


def _neutralised(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every cell the table schema types `string` made safe for spreadsheets."""
    text = {f["name"] for f in _schema_fields(table) if f["type"] == "string"}
    return [{k: spreadsheet_text(v) if k in text else v for k, v in row.items()} for row in rows]


def _when(value: datetime | None, round_up: bool = False) -> str:
    if value is None:
        return ""
    value = value.astimezone(timezone.utc)
    if round_up and value.microsecond:
        value = value + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_path(uri: str) -> str:
    return uri if "://" in uri else Path(uri).as_uri()


def _id(*parts: Any) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:16]


def write_camtrap_dp(detections: list[dict], deployments: list[dict], media: list[dict],
                     out_dir: Path, *, title: str, contributor: str,
                     sampling_design: str = "targeted") -> dict[str, int]:
    """Write datapackage.json and the three tables; returns counts, including what was left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = {"deployments_without_coordinates": 0, "recordings_without_start_time": 0}
    kept_deployments = []
    for d in deployments:
        if d["latitude"] is None or d["longitude"] is None or d["period_start_utc"] is None:
            notes["deployments_without_coordinates"] += 1
            log.warning("camtrap-dp: deployment %s has no coordinates or period; left out",
                        d["deployment_id"])
            continue
        kept_deployments.append(d)
    deployment_ids = {d["deployment_id"] for d in kept_deployments}
    kept_media = [m for m in media if m["deployment_id"] in deployment_ids]
    media_ids = {m["recording_id"] for m in kept_media}
    observations = [o for o in detections if o["recording_id"] in media_ids and o["start_utc"]]
    notes["recordings_without_start_time"] = len(
        {o["recording_id"] for o in detections if o["deployment_id"] in deployment_ids} - media_ids)

    rows = {
        "deployments": [{
            "deploymentID": d["deployment_id"], "locationID": d["site_id"] or d["deployment_id"],
            "locationName": d["site_id"] or "", "latitude": d["latitude"], "longitude": d["longitude"],
            "deploymentStart": _when(d["period_start_utc"]),
            "deploymentEnd": _when(d["period_end_utc"], round_up=True),
            "cameraModel": d["recorder"] or "", "timestampIssues": str(bool(d["some_start_unknown"])).lower(),
            "deploymentComments": "acoustic recorder",
        } for d in kept_deployments],
        "media": [{
            "mediaID": m["recording_id"], "deploymentID": m["deployment_id"],
            "captureMethod": "timeLapse", "timestamp": _when(m["start_utc"]),
            "filePath": _file_path(m["uri"]), "filePublic": "false",
            "fileName": m["object_key"].rsplit("/", 1)[-1],
            "fileMediatype": MEDIATYPES.get((m["format"] or "").upper(), "audio/x-unknown"),
            "mediaComments": f"duration {m['duration_s']} s",
        } for m in kept_media],
        "observations": [{
            "observationID": _id(o["recording_id"], o["channel"], o["window_index"], o["rank"],
                                 o["config_fingerprint"]),
            "deploymentID": o["deployment_id"], "mediaID": o["recording_id"],
            "eventStart": _when(o["start_utc"]),
            "eventEnd": _when(o["start_utc"] + timedelta(seconds=o["end_offset_s"] - o["offset_s"]),
                              round_up=True),
            "observationLevel": "media",
            "observationType": "animal" if o["scientific_name"] else "unknown",
            "scientificName": o["scientific_name"] or "",
            "classificationMethod": "machine", "classifiedBy": o["model_id"],
            "classificationProbability": o["score"],
            "observationTags": f"channel:{o['channel']}|rank:{o['rank']}|fileOffset:{o['offset_s']}",
            "observationComments": o["label"] or "",
        } for o in observations],
    }
    for table in TABLES:
        with open(out_dir / f"{table}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=_fields(table))
            writer.writeheader()
            writer.writerows(_neutralised(table, rows[table]))

    lats = [d["latitude"] for d in kept_deployments]
    lons = [d["longitude"] for d in kept_deployments]
    starts = [d["period_start_utc"] for d in kept_deployments]
    ends = [d["period_end_utc"] for d in kept_deployments if d["period_end_utc"]]
    taxa = sorted({(o["scientific_name"], o["label"]) for o in observations if o["scientific_name"]})
    descriptor = {
        "resources": [{
            "name": table, "path": f"{table}.csv", "profile": "tabular-data-resource",
            "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "schema": f"{BASE_URL}/{table}-table-schema.json",
        } for table in TABLES],
        "profile": f"{BASE_URL}/camtrap-dp-profile.json",
        "name": "dawnchorus-detections",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": title,
        "contributors": [{"title": contributor, "role": "contact"}],
        "description": "Species detections from passive acoustic monitoring, exported by "
                       "dawnchorus: media are audio recordings, observations machine "
                       "classifications of analysis windows.",
        "sources": [{"title": "dawnchorus"}],
        "project": {
            "title": title, "samplingDesign": sampling_design, "captureMethod": ["timeLapse"],
            "individualAnimals": False, "observationLevel": ["media"],
        },
        "spatial": _bbox(lats, lons),
        "temporal": {
            "start": min(starts).date().isoformat() if starts else "1970-01-01",
            "end": max(ends).date().isoformat() if ends else "1970-01-01",
        },
        "taxonomic": [{"scientificName": s, "taxonRank": "species", "vernacularNames": {"eng": c}}
                      for s, c in taxa],
    }
    (out_dir / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n",
                                             encoding="utf-8")
    return {"deployments": len(rows["deployments"]), "media": len(rows["media"]),
            "observations": len(rows["observations"]), **notes}


def _bbox(lats: list[float], lons: list[float]) -> dict[str, Any]:
    if not lats:
        return {"type": "Point", "coordinates": [0.0, 0.0]}
    if min(lats) == max(lats) and min(lons) == max(lons):
        return {"type": "Point", "coordinates": [lons[0], lats[0]]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def validate_package(folder: Path) -> list[str]:
    """Problems of a package against Camtrap DP 1.0.2, offline; [] when it validates.

    The descriptor is checked against the published profile (JSON Schema draft-04) with
    jsonschema: the profile's references to the generic Data Package and GeoJSON schemas resolve
    to an empty schema and frictionless's bundled GeoJSON profile (frictionless checks the generic
    Data Package rules itself). Each table is checked against its published table schema by
    frictionless: types, formats, required fields, enums, patterns, unique and foreign keys.
    """
    import frictionless
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    profile = json.loads((SCHEMAS / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    geojson = json.loads((Path(frictionless.__file__).parent / "assets" / "profiles" /
                          "geojson.json").read_text(encoding="utf-8"))
    registry = Registry().with_resources([
        ("https://specs.frictionlessdata.io/schemas/data-package.json",
         Resource.from_contents({}, default_specification=DRAFT4)),
        ("http://json.schemastore.org/geojson.json",
         Resource.from_contents(geojson, default_specification=DRAFT4)),
    ])
    validator = jsonschema.Draft4Validator(profile, registry=registry)
    problems = [f"datapackage.json: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(descriptor)]
    local = json.loads(json.dumps(descriptor))
    local["profile"] = "data-package"
    for resource in local["resources"]:
        name = resource["name"]
        resource["schema"] = json.loads((SCHEMAS / f"{name}-table-schema.json").read_text(encoding="utf-8"))
    report = frictionless.Package(local, basepath=str(folder)).validate()
    for task in report.tasks:
        for error in task.errors:
            problems.append(f"{task.name}: {error.type}: {error.message}")
    problems += [f"package: {e.type}: {e.message}" for e in report.errors]
    return problems
