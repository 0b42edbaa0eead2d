"""Every package ships: pyproject lists each Python package folder of the product (a folder left
out would be missing from a wheel or a non-editable install), and the image copies each one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("flows", "connectors", "naturelm_core")


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(setuptools_config()["packages"])
    folders = {init.parent.relative_to(ROOT).as_posix().replace("/", ".")
               for top in PRODUCT for init in (ROOT / top).rglob("__init__.py")}
    assert folders - listed == set()
    assert {p for p in listed if p.split(".")[0] in PRODUCT} - folders == set()


def test_the_image_copies_every_top_level_package():
    config = setuptools_config()
    dirs = config.get("package-dir", {})
    tops = {dirs.get(p, p.split(".")[0].replace(".", "/")) for p in config["packages"]}
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\./\1\s*$", dockerfile, flags=re.M))
    assert tops - copied == set()


def test_the_entry_point_and_the_flows_prefect_deploys_exist():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, function = pyproject["project"]["scripts"]["dawnchorus"].partition(":")
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    assert f"def {function}(" in source
    prefect_yaml = (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    for path, name in re.findall(r"entrypoint:\s*(\S+\.py):(\w+)", prefect_yaml):
        assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), (path, name)
