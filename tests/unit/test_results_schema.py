"""docs/results.md documents every column a real run writes, and the schema version in code."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from adabench import store
from adabench.analysis.schema import RESULTS_SCHEMA_VERSION

ROOT = Path(__file__).parents[2]
TINY_RUN = ROOT / "tests" / "fixtures" / "tiny_run"  # a real `adabench sweep`, trimmed


def _documented(section: str) -> set[str]:
    """The `column` names in the first cell of each table row under `## \\`<section>\\``."""
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    part = text.split(f"## `{section}`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", part, flags=re.M))


@pytest.mark.parametrize(
    ("table", "listed"),
    [
        ("cells.parquet", store.CELL_COLUMNS + store.OPTIONAL_CELL_COLUMNS),
        ("samples.parquet", store.SAMPLE_COLUMNS + store.OPTIONAL_SAMPLE_COLUMNS),
    ],
)
def test_every_column_of_a_real_run_is_documented(table, listed):
    written = set(pd.read_parquet(TINY_RUN / table).columns) | set(listed)
    missing = sorted(written - _documented(table))
    assert missing == [], f"docs/results.md does not document {table} columns {missing}"


def test_docs_name_the_schema_version():
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert f"Results schema version: **{RESULTS_SCHEMA_VERSION}**" in text
