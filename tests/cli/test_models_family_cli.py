"""Decoder families at the CLI: `models show/list` name them, unsupported models are refused from
their config (exit 2, one line) before anything is loaded or measured, and the config-only shipped
configs (llava-v1.6-mistral-7b, llava-qwen2-7b) run through `adabench flops` and --no-weights."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from adabench.cli import app
from adabench.models import catalog
from tests.conftest import build_random_llava

runner = CliRunner()
NEW_SHIPPED = ("llava-v1.6-mistral-7b", "llava-qwen2-7b")
CONFIG_ONLY = ("llava-qwen2-7b",)
"""Shipped configs without a hub checkpoint of their shapes (the others are HUB_ALIASES)."""


@pytest.fixture(scope="module")
def saved_llava(tmp_path_factory):
    """A saved random tiny Llava folder (Llama decoder), copied and edited per test."""
    model, processor = build_random_llava(layers=2)
    path = tmp_path_factory.mktemp("family_llava")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def edited(saved, tmp_path, edit) -> str:
    """Returns a copy of `saved` whose config.json went through `edit(config dict)`."""
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def text_type(model_type, arch):
    def edit(config):
        config["text_config"].update(model_type=model_type, architectures=[arch])

    return edit


def top_type(model_type, arch):
    def edit(config):
        config.update(model_type=model_type, architectures=[arch])

    return edit


def rope_type(kind):
    def edit(config):
        config["text_config"]["rope_parameters"] = {"rope_type": kind, "rope_theta": 10000.0}

    return edit


REFUSED = {
    "phi-2": (text_type("phi", "PhiForCausalLM"), ["decoder family 'phi'", "adabench runs"]),
    "gpt-neox": (
        text_type("gpt_neox", "GPTNeoXForCausalLM"),
        ["decoder family 'gpt_neox'", "adabench runs"],
    ),
    "paligemma": (
        top_type("paligemma", "PaliGemmaForConditionalGeneration"),
        ["model class 'paligemma'", "LlavaForConditionalGeneration", "Idefics3"],
    ),
    "mllama": (
        top_type("mllama", "MllamaForConditionalGeneration"),
        ["model class 'mllama'", "LlavaNextForConditionalGeneration"],
    ),
    "unknown-rope": (rope_type("warped"), ["rotary type 'warped'", "adabench implements"]),
}


def assert_refused(result, needles, folder):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {folder}") or folder in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_every_family_is_named_in_a_refusal(saved_llava, tmp_path):
    folder = edited(saved_llava, tmp_path, text_type("phi", "PhiForCausalLM"))
    line = runner.invoke(app, ["models", "show", folder]).stderr
    for family in ("Llama (llama)", "Mistral (mistral)", "Qwen2 (qwen2", "Gemma 2 (gemma2)"):
        assert family in line


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize(
    "command",
    [
        ["models", "show"],  # catalog.describe
        ["flops", "--model"],  # catalog.config_for
        ["eval", "--limit", "1", "--device", "cpu", "--model"],  # loading.check_model_folder
        ["eval", "--limit", "1", "--device", "cpu", "--no-weights", "--model"],  # config_for
    ],
    ids=["show", "flops", "eval", "eval-no-weights"],
)
def test_unsupported_models_exit_2_with_one_line(saved_llava, tmp_path, case, command):
    edit, needles = REFUSED[case]
    folder = edited(saved_llava, tmp_path, edit)
    assert_refused(runner.invoke(app, [*command, folder]), needles, folder)


@pytest.mark.parametrize("no_weights", [False, True], ids=["weights", "no-weights"])
def test_sweep_refuses_before_making_a_run_folder(saved_llava, tmp_path, no_weights):
    folder = edited(saved_llava, tmp_path, text_type("phi", "PhiForCausalLM"))
    out = tmp_path / "runs"
    args = ["sweep", "--models", folder, "--methods", "full", "--suites", "shapes"]
    args += ["--limit", "1", "--device", "cpu", "--out", str(out), "--no-report"]
    result = runner.invoke(app, args + (["--no-weights"] if no_weights else []))
    assert_refused(result, REFUSED["phi-2"][1], folder)
    assert not out.exists() or not any(out.iterdir())


def test_load_model_refuses_before_loading(saved_llava, tmp_path, monkeypatch):
    """The check runs on config.json: the weights are never read."""
    from transformers import LlavaForConditionalGeneration

    from adabench.errors import UserError
    from adabench.models.loading import load_model

    def never(*args, **kwargs):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(LlavaForConditionalGeneration, "from_pretrained", never)
    folder = edited(
        saved_llava, tmp_path, top_type("paligemma", "PaliGemmaForConditionalGeneration")
    )
    with pytest.raises(UserError, match="model class 'paligemma'"):
        load_model(folder, device="cpu")


def test_models_show_names_the_family_and_wrapper():
    result = runner.invoke(app, ["models", "show", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["family"] == "Llama (llama)"
    assert (
        info["family_note"]
        == catalog.family_fields(
            catalog.check_supported(catalog.config_for("tiny")), catalog.config_for("tiny")
        )["family_note"]
    )
    assert info["wrapper"] == "LlavaForConditionalGeneration"
    table = runner.invoke(app, ["models", "show", "tiny"]).stdout
    assert "Llama (llama)" in table and "LlavaForConditionalGeneration" in table


@pytest.mark.parametrize(
    ("name", "family", "wrapper"),
    [
        ("llava-1.5-7b", "Llama (llama)", "LlavaForConditionalGeneration"),
        ("llava-v1.6-mistral-7b", "Mistral (mistral)", "LlavaNextForConditionalGeneration"),
        ("llava-qwen2-7b", "Qwen2 (qwen2)", "LlavaForConditionalGeneration"),
    ],
)
def test_models_show_on_shipped_configs(name, family, wrapper):
    result = runner.invoke(app, ["models", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["family"], info["wrapper"]) == (family, wrapper)
    assert info["family_note"]
    assert info["image_tokens"] == 576
    if name in CONFIG_ONLY:
        assert name not in catalog.HUB_ALIASES and "checkpoint" in info


def test_models_list_has_a_family_column():
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["tiny"]["family"] == "Llama (llama)"
    assert rows["llava-1.5-13b"]["family"] == "Llama (llama)"
    assert rows["llava-v1.6-mistral-7b"]["family"] == "Mistral (mistral)"
    assert rows["llava-qwen2-7b"]["family"] == "Qwen2 (qwen2)"
    assert "family" in runner.invoke(app, ["models", "list"]).stdout


@pytest.mark.parametrize(
    ("name", "layers", "heads", "kv", "inter", "tflops"),
    [
        ("llava-v1.6-mistral-7b", 32, 32, 8, 14336, 9.15),
        ("llava-qwen2-7b", 28, 28, 4, 18944, 8.52),
    ],
)
def test_flops_on_the_new_shipped_configs(name, layers, heads, kv, inter, tflops):
    # 576 visual tokens: one CLIP tile (LLaVA-NeXT's own count follows the image; see
    # tests/cli/test_wrapper_flops_cli.py), so s = 640 with the 64 prompt tokens.
    result = runner.invoke(app, ["flops", "--model", name, "--image-tokens", "576", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    config = catalog.config_for(name)
    text = config.text_config
    assert (text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        layers,
        heads,
        kv,
    )
    assert text.intermediate_size == inter and text.head_dim == 128
    # Closed form of one GQA block on s = 640 tokens: q, o + k, v projections, QKᵀ and AV, MLP.
    s, d, hd = 640, text.hidden_size, 128
    block = 2 * s * d * hd * (2 * heads + 2 * kv) + 4 * s * s * hd * heads + 6 * s * d * inter
    assert row["prefill_llm_flops"] == layers * block
    assert row["prefill_llm_tflops"] == pytest.approx(tflops, abs=0.01)
    table = runner.invoke(app, ["flops", "--model", name, "--method", "adallava-h"])
    assert table.exit_code == 0, table.output


def test_qwen2_adallava_h_units_respect_gqa():
    """28 heads in 4 key/value groups of 7: the shipped r = 7 gives 4 units per block."""
    from adabench.models.adallava.model import AdaLlavaConfig

    settings = catalog.adallava_settings_for("llava-qwen2-7b")
    assert settings == {"prefix_layers": 14, "group_size": 7}
    ada = AdaLlavaConfig.for_model(catalog.config_for("llava-qwen2-7b"), "H", **settings)
    assert (ada.kv_group, ada.group_size, ada.units.total, ada.units.prefix) == (7, 7, 112, 56)
    mistral = AdaLlavaConfig.for_model(
        catalog.config_for("llava-v1.6-mistral-7b"),
        "H",
        **catalog.adallava_settings_for("llava-v1.6-mistral-7b"),
    )
    assert (mistral.kv_group, mistral.group_size, mistral.units.total) == (4, 8, 128)


@pytest.mark.parametrize("name", CONFIG_ONLY)
def test_config_only_names_need_no_weights(name):
    result = runner.invoke(app, ["eval", "--model", name, "--limit", "1", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "--no-weights" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("name", NEW_SHIPPED)
def test_new_shipped_configs_build_without_weights_on_meta(name):
    """The --no-weights path reads them (shapes only: built on the meta device)."""
    import torch

    from adabench.models import no_weights as nw

    config = catalog.config_for(name)
    model = nw.create_empty(config, "meta", torch.bfloat16)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    assert params == pytest.approx(
        {"llava-v1.6-mistral-7b": 7.567, "llava-qwen2-7b": 7.936}[name], abs=0.01
    )
    attn = model.model.language_model.layers[0].self_attn
    assert (attn.q_proj.bias is not None) == (name == "llava-qwen2-7b")
    assert nw.build_synthetic_processor(config).tokenizer.convert_tokens_to_ids("<image>") == (
        config.image_token_id
    )


def _entry_points():
    from pathlib import Path

    from adabench.models import loading

    return {
        "check_model_folder": lambda f: loading.check_model_folder(Path(f)),
        "check_model": loading.check_model,
        "config_without_network": lambda f: loading._config_without_network(f, f),
        "config_for": catalog.config_for,
        "describe": catalog.describe,
        "read_config": catalog.read_config,
    }


@pytest.mark.parametrize("case", ["phi-2", "paligemma", "unknown-rope"])
@pytest.mark.parametrize("entry", sorted(_entry_points()))
def test_each_entry_point_checks_the_config(saved_llava, tmp_path, entry, case):
    """Every place that reads a config for loading or measuring refuses on its own (the CLI
    tests above would still pass with one of them removed: another catches it later)."""
    from adabench.errors import UserError

    edit, needles = REFUSED[case]
    folder = edited(saved_llava, tmp_path, edit)
    with pytest.raises(UserError) as info:
        _entry_points()[entry](folder)
    assert all(needle in str(info.value) for needle in needles), info.value
    _entry_points()[entry](str(saved_llava))  # the unedited folder passes
