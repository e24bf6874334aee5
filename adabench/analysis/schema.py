"""The version of the results-folder schema that docs/results.md documents column by column."""

from __future__ import annotations

RESULTS_SCHEMA_VERSION = 1
"""Goes up when a column of cells.parquet or samples.parquet is renamed, removed, or changes its
unit or meaning (docs/results.md); adding a documented column keeps it."""
