"""`adabench env`: a table by default, valid JSON with --json."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from adabench.cli import app


def test_env_json_is_valid_and_complete():
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    for key in ("host", "cpu", "ram_gb", "python", "torch", "transformers", "gpus", "git", "env"):
        assert key in info


def test_env_table_by_default(monkeypatch):
    # adabench.console.out binds sys.stdout at import, which can bypass CliRunner's capture
    buffer = io.StringIO()
    monkeypatch.setattr("adabench.console.out", Console(file=buffer, width=200))
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.stderr
    text = result.stdout + buffer.getvalue()
    assert "python" in text and "cpu.model" in text


def test_env_help_shows_examples():
    result = CliRunner().invoke(app, ["env", "--help"])
    assert result.exit_code == 0 and "adabench env --json" in result.stdout
