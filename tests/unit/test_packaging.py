"""The dashboard's templates and static files ship with the package (``pyproject.toml`` package data)."""

import tomllib
from glob import glob

from tests.support import ROOT


def test_every_template_and_static_file_is_package_data():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for folder in ("templates", "static"):
        root = ROOT / folder
        files = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
        shipped = {match for pattern in package_data[folder] for match in glob(pattern, root_dir=root)}
        assert files and files <= shipped, sorted(files - shipped)
