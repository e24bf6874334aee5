"""The plugin API (adabench/api.py), plugin loading (adabench/models/plugins.py), the request
and budget checks (adabench/models/methods.py) and the plan-file method — without a model."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adabench import api
from adabench.errors import UserError
from adabench.models import methods, plugins
from adabench.models.baselines.plan_file import PlanFile

ROOT = Path(__file__).resolve().parents[2]
SKIP_ODD = ROOT / "examples" / "plugins" / "skip_odd.py"
PACKAGE = ROOT / "examples" / "plugins" / "adabench-example-methods"


@pytest.fixture(autouse=True)
def _fresh_plugins():
    plugins.unload_plugins()
    yield
    plugins.unload_plugins()


def fake_model(layers: int = 12, heads: int = 4, inter: int = 384, image_token: int = 4):
    text = SimpleNamespace(
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=inter,
        model_type="llama",
    )
    return methods.ConfigOnly("fake", SimpleNamespace(text_config=text, image_token_id=image_token))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


PLUGIN_HEAD = "from adabench.api import Method, Plan, Request, register_method, num_blocks\n"


def test_api_exports_the_contract_and_built_ins_use_the_same_decorator():
    for name in ("VERSION", "Method", "TokenMethod", "Request", "Plan", "LayerPlan",
                 "register_method", "num_blocks", "num_heads", "mlp_groups", "family",
                 "visual_positions"):  # fmt: skip
        assert hasattr(api, name), name
    assert api.register_method is methods.register
    assert api.Method is methods.Method and api.Plan is methods.Plan
    assert methods.origin_of("layer-drop") == methods.BUILT_IN
    model = fake_model()
    assert (api.num_blocks(model), api.num_heads(model), api.mlp_groups(model)) == (12, 4, 4)
    ids = torch.tensor([[1, 4, 4, 2, 4]])
    assert api.visual_positions(model, ids) == [1, 2, 4] and api.visual_count(model, ids) == 3


def test_a_file_plugin_registers_its_method_with_origin_and_sha256():
    record = plugins.load_plugin(str(SKIP_ODD))
    assert record["methods"] == ["skip-odd"] and record["kind"] == "file"
    assert record["sha256"] == hashlib.sha256(SKIP_ODD.read_bytes()).hexdigest()
    assert methods.origin_of("skip-odd").startswith("file ")
    assert "skip-odd" in methods.METHODS
    assert plugins.load_plugin(str(SKIP_ODD)) is record  # imported once per process
    method = methods.build_registered("skip-odd", fake_model(), 0.75)
    request = methods.checked_request(method, "s", torch.zeros(1, 3), torch.zeros(1, 1, 8))
    assert request.plan.kept_blocks() == [0, 1, 2, 3, 4, 5, 6, 8, 10]
    with pytest.raises(UserError, match=r"minimum is 0\.75"):
        methods.build_registered("skip-odd", fake_model(), 0.5)


def test_shadowing_a_built_in_is_refused_naming_plugin_and_method(tmp_path):
    path = write(tmp_path, "shadow.py", PLUGIN_HEAD + (
        "@register_method\nclass Mine(Method):\n    NAME = 'layer-drop'\n"))  # fmt: skip
    with pytest.raises(UserError, match=r"plugin file .*shadow\.py: method 'layer-drop' shadows"):
        plugins.load_plugin(str(path))
    assert methods.origin_of("layer-drop") == methods.BUILT_IN


def test_import_failure_and_no_method_are_one_line_errors(tmp_path):
    broken = write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('boom')\n")
    with pytest.raises(UserError, match=r"broken\.py failed to import \(broken\.py:2\): "
                       r"RuntimeError: boom") as info:  # fmt: skip
        plugins.load_plugin(str(broken))
    assert isinstance(info.value.__cause__, RuntimeError)  # the traceback of ADABENCH_DEBUG=1
    empty = write(tmp_path, "empty.py", "X = 1\n")
    with pytest.raises(UserError, match="registers no method"):
        plugins.load_plugin(str(empty))
    with pytest.raises(UserError, match="no module named 'no_such_plugin_mod'"):
        plugins.load_plugin("no_such_plugin_mod")
    with pytest.raises(UserError, match="no such file"):
        plugins.load_plugin(str(tmp_path / "missing.py"))


BAD = (
    PLUGIN_HEAD
    + """
@register_method
class Raises(Method):
    NAME = "raises"
    def request(self, sample_id, input_ids, image_features):
        return 1 / 0

@register_method
class WrongType(Method):
    NAME = "wrong-type"
    def request(self, sample_id, input_ids, image_features):
        return Plan.full(num_blocks(self.model))

@register_method
class BadHeads(Method):
    NAME = "bad-heads"
    def request(self, sample_id, input_ids, image_features):
        from adabench.api import LayerPlan
        n = num_blocks(self.model)
        return Request(plan=Plan(layers=(LayerPlan(heads=(0, 9)),) * n))

@register_method
class OverBudget(Method):
    NAME = "over-budget"
    def request(self, sample_id, input_ids, image_features):
        return Request(plan=Plan.full(num_blocks(self.model)))
"""
)


def test_request_errors_name_the_plugin_and_method(tmp_path):
    plugins.load_plugin(str(write(tmp_path, "bad.py", BAD)))
    model, ids, feats = fake_model(), torch.zeros(1, 3), torch.zeros(1, 1, 8)

    def call(name):
        m = methods.build_registered(name, model, 0.5)
        return methods.checked_request(m, "s1", ids, feats)

    with pytest.raises(UserError, match=r"plugin file .*bad\.py: method 'raises' raised "
                       r"ZeroDivisionError in request for sample 's1'") as info:  # fmt: skip
        call("raises")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(UserError, match=r"method 'wrong-type': request returned a Plan, not an"):
        call("wrong-type")
    with pytest.raises(UserError, match=r"heads \[0, 9\]; each must be in \[0, 4\)"):
        call("bad-heads")
    over = methods.build_registered("over-budget", model, 0.5)
    with pytest.raises(UserError, match=r"method 'over-budget' ran a plan with flops_ratio "
                       r"1\.0000 on sample 's1', above its budget 0\.5"):  # fmt: skip
        methods.check_within_budget(over, 1.0, "s1")
    methods.check_within_budget(methods.build_registered("full", model, 0.5), 1.0, "s1")


def test_entry_point_plugins_load_from_an_installed_distribution(tmp_path, monkeypatch):
    dist = tmp_path / "adabench_example_methods-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: adabench-example-methods\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[adabench.methods]\nexample = adabench_example_methods\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PACKAGE))
    (record,) = plugins.load_entry_points()
    assert record["kind"] == "entry point" and record["version"] == "0.1.0"
    assert record["methods"] == ["every-other-block", "every-other-token"]
    assert methods.origin_of("every-other-token").startswith("entry point adabench-example")
    model = fake_model()
    block = methods.build_registered("every-other-block", model, 0.5)
    plan = methods.checked_request(block, "s", torch.zeros(1, 3), torch.zeros(1, 5, 8)).plan
    assert plan.kept_blocks() == [0, 2, 4, 6, 8, 10]
    token = methods.build_registered("every-other-token", model, 1.0)
    req = methods.checked_request(token, "s", torch.zeros(1, 3), torch.zeros(1, 5, 8))
    assert req.image_features.shape[1] == 3 and req.plan.visual_tokens_removed == 2
    plugins.unload_plugins()
    assert "every-other-block" not in methods.METHODS
    sys.modules.pop("adabench_example_methods", None)


def plan_file(tmp_path, lines: list) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    return write(tmp_path, "plans.jsonl", text + "\n")


def test_plan_file_replays_blocks_layers_and_visual_tokens(tmp_path):
    path = plan_file(tmp_path, [
        "# a comment",
        {"sample_id": "a", "blocks": [0, 1, 5]},
        {"sample_id": "b", "layers": [None] * 11 + [{"heads": [0, 1], "mlp_groups": [1]}],
         "mlp_group_count": 2},
        {"sample_id": "c", "visual_tokens": [0, 2]},
    ])  # fmt: skip
    method = PlanFile(fake_model(), 1.0, {"path": str(path)})
    ids, feats = torch.zeros(1, 3), torch.arange(5.0).view(1, 5, 1)
    assert method.request("a", ids, feats).plan.kept_blocks() == [0, 1, 5]
    plan_b = method.request("b", ids, feats).plan
    assert plan_b.kept_blocks() == [11] and plan_b.mlp_fraction(11) == 0.5
    req = method.request("c", ids, feats)
    assert req.image_features.flatten().tolist() == [0.0, 2.0]
    assert req.plan.visual_tokens_removed == 3
    with pytest.raises(UserError, match=r"no plan for sample 'zzz' \(the file has 3 plans"):
        method.request("zzz", ids, feats)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"plans\.jsonl:2: invalid JSON"),
        ({"blocks": [0]}, r":2: needs a \"sample_id\""),
        ({"sample_id": "x", "blocks": [0, 12]}, r":2: \"blocks\" must be a list of whole numbers in \[0, 12\)"),
        ({"sample_id": "a", "blocks": [1]}, r":2: sample 'a' already has a plan on line 1"),
        ({"sample_id": "x", "layers": [None]}, r":2: \"layers\" must list all 12 blocks"),
        ({"sample_id": "x"}, r":2: needs \"blocks\", \"layers\" or \"visual_tokens\""),
        ({"sample_id": "x", "blocks": [0], "speed": 1}, r":2: unknown key"),
    ],
)  # fmt: skip
def test_plan_file_malformed_lines_name_the_line(tmp_path, line, message):
    path = plan_file(tmp_path, [{"sample_id": "a", "blocks": [0]}, line])
    with pytest.raises(UserError, match=message):
        PlanFile(fake_model(), 1.0, {"path": str(path)})


def test_plugin_paths_in_a_config_are_made_absolute(tmp_path, monkeypatch):
    from adabench.config import SweepConfig

    monkeypatch.chdir(tmp_path)
    cfg = SweepConfig(plugins=["p.py", "pkg.methods", "p.py"])
    assert cfg.plugins == [str(tmp_path / "p.py"), "pkg.methods"]


def test_compare_names_plugins_whose_code_differs():
    from adabench.analysis.compare import plugin_differences

    a = [{"name": "skip_odd", "version": "", "sha256": "a" * 64}, {"name": "old"}]
    b = [{"name": "skip_odd", "version": "", "sha256": "b" * 64}]
    assert plugin_differences(a, b) == [
        "plugin old: only in the base run",
        f"plugin skip_odd: sha256 {'a' * 12} → {'b' * 12} (different plugin code)",
    ]
    assert plugin_differences(a, a) == []


def test_plan_file_reads_parquet_and_names_the_row(tmp_path):
    import pandas as pd

    path = tmp_path / "plans.parquet"
    pd.DataFrame({"sample_id": ["a", "b"], "blocks": [[0, 2], None],
                  "visual_tokens": [None, [1, 3]]}).to_parquet(path)  # fmt: skip
    method = PlanFile(fake_model(), 1.0, {"path": str(path)})
    ids, feats = torch.zeros(1, 3), torch.arange(5.0).view(1, 5, 1)
    assert method.request("a", ids, feats).plan.kept_blocks() == [0, 2]
    assert method.request("b", ids, feats).image_features.flatten().tolist() == [1.0, 3.0]
    pd.DataFrame({"sample_id": ["a", "b"], "blocks": [[0], [99]]}).to_parquet(path)
    with pytest.raises(UserError, match=r"plans\.parquet row 2: \"blocks\" must be"):
        PlanFile(fake_model(), 1.0, {"path": str(path)})


def test_a_plugin_failing_when_built_names_plugin_and_method(tmp_path):
    text = PLUGIN_HEAD + (
        "@register_method\nclass Picky(Method):\n    NAME = 'picky'\n"
        "    def __init__(self, *args, **kwargs):\n        raise KeyError('layers')\n"
    )
    plugins.load_plugin(str(write(tmp_path, "picky.py", text)))
    with pytest.raises(UserError, match=r"picky\.py: method 'picky' raised KeyError when built"):
        methods.build_registered("picky", fake_model(), 0.5)


def test_a_module_plugin_loads_by_name_with_its_version(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGE))
    record = plugins.load_plugin("adabench_example_methods")
    assert record["kind"] == "module" and record["version"] == "0.1.0"
    assert record["methods"] == ["every-other-block", "every-other-token"]
    assert methods.origin_of("every-other-block") == "module adabench_example_methods"
    plugins.unload_plugins()
    assert "adabench_example_methods" not in sys.modules
