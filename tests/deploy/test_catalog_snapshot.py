"""The built layer's pre-parsed catalog (layers/afk/Makefile, afk/catalog/schema.py):
the catalog its YAML describes, read without importing PyYAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.deploy.test_lambda_built import LAYER, build  # noqa: F401 - the fixture

CODE = """
import sys
from afk.catalog import Catalog
from afk.catalog.schema import BUILTIN, parse_catalog
snapshot = Catalog.load()
print("yaml" in sys.modules)
source = parse_catalog(BUILTIN.read_text("utf-8"), "afk/catalog.yaml")
print(len(source) > 0, list(snapshot) == list(source), snapshot.endpoints == source.endpoints)
"""


def test_the_built_catalog_is_its_yaml_read_without_pyyaml(build: Path) -> None:  # noqa: F811
    assert (LAYER / "afk" / "catalog.json").is_file()
    env = {**os.environ, "PYTHONPATH": str(LAYER), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]
