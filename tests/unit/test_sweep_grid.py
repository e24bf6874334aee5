"""Sweep grid expansion, ordering, config precedence and validation."""

import pytest

from adabench.config import SweepConfig, parse_floats
from adabench.errors import UserError
from adabench.sweep.grid import expand


def test_grid_order_model_outer_then_contention_full_once():
    cfg = SweepConfig(
        models=["a", "b"],
        methods=["full", "layer-drop"],
        suites=["shapes"],
        budgets=[0.5, 1.0],
        contention=[0.0, 0.5],
    )
    cells, skipped = expand(cfg, variants={"a": None, "b": None})
    assert not skipped
    assert len(cells) == 2 * 2 * (1 + 2)
    assert [c.model for c in cells] == ["a"] * 6 + ["b"] * 6
    assert [c.contention for c in cells[:6]] == [0.0] * 3 + [0.5] * 3
    assert [(c.model, c.method, c.budget) for c in cells[:6]] == [
        ("a", "full", 1.0),
        ("a", "layer-drop", 0.5),
        ("a", "layer-drop", 1.0),
        ("a", "full", 1.0),
        ("a", "layer-drop", 0.5),
        ("a", "layer-drop", 1.0),
    ]
    assert len({c.cell_id() for c in cells}) == len(cells)


def test_adallava_methods_skip_models_without_scheduler():
    cfg = SweepConfig(
        models=["tiny", "ada"], methods=["full", "adallava-l", "adallava-h"], budgets=[0.5]
    )
    cells, skipped = expand(cfg, variants={"tiny": None, "ada": "L"})
    assert {(s.model, s.method) for s in skipped} == {
        ("tiny", "adallava-l"),
        ("tiny", "adallava-h"),
        ("ada", "adallava-h"),
    }
    assert all(not (c.model == "tiny" and c.method.startswith("adallava")) for c in cells)


def test_cell_id_is_deterministic_and_coordinate_sensitive():
    cfg = SweepConfig(models=["a"], methods=["layer-drop"], budgets=[0.5], contention=[0.0])
    (c1,), _ = expand(cfg, variants={"a": None})
    (c2,), _ = expand(cfg, variants={"a": None})
    assert c1.cell_id() == c2.cell_id()
    cfg.seed = 1
    (c3,), _ = expand(cfg, variants={"a": None})
    assert c3.cell_id() != c1.cell_id()


def test_precedence_cli_over_yaml_over_defaults(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("methods: [full]\nlimit: 7\nbudgets: [0.6]\n")
    cfg = SweepConfig.from_layers(path, {"limit": 3, "budgets": None})
    assert cfg.methods == ["full"] and cfg.limit == 3 and cfg.budgets == [0.6]
    assert cfg.suites == ["shapes"]  # default


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budgets": [1.5]}, r"budget must be in \(0.0, 1.0\]"),
        ({"budgets": [0.0]}, r"budget must be in \(0.0, 1.0\]"),
        ({"contention": [-0.1]}, r"contention level must be in \[0.0, 1.0\]"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"limit": 0}, "limit must be >= 1"),
    ],
)
def test_bad_numbers_name_the_allowed_range(kwargs, message):
    with pytest.raises(UserError, match=message):
        SweepConfig(**kwargs)


def test_unknown_yaml_key_suggests(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("budget: [0.5]\n")
    with pytest.raises(UserError, match="Did you mean 'budgets'"):
        SweepConfig.from_layers(path, {})


def test_budget_range_parser():
    assert parse_floats("0.5:1.0:0.25", "budgets") == [0.5, 0.75, 1.0]
    assert parse_floats("0.5,1", "budgets") == [0.5, 1.0]
    with pytest.raises(UserError):
        parse_floats("a,b", "budgets")
