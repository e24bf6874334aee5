"""Fixtures of the CLI tests: saved tiny models of every VLM wrapper."""

from __future__ import annotations

import pytest

from tests.wrapper_models import WRAPPERS, build


@pytest.fixture(scope="module", params=WRAPPERS)
def wrapper_dir(request, tmp_path_factory):
    """A saved tiny model of the wrapper with its processor (what a user passes as --model)."""
    path = tmp_path_factory.mktemp(request.param.replace(".", "_"))
    model, processor = build(request.param)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
