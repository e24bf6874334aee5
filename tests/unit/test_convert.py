"""`adabench convert adallava`: a fabricated official-layout checkpoint (a random tiny Llava's
weights under the authors' LLaVA names + scheduler.* tensors) converts, loads with
`load_model`, and gives the same logits as the model it came from."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from adabench.convert import convert_adallava
from adabench.errors import UserError
from adabench.models.adallava.model import AdaLlavaConfig, AdaLlavaHead
from adabench.models.loading import load_model
from tests.conftest import build_random_llava

TO_ORIGINAL = (  # adabench/HF name → the authors' LLaVA name (the inverse of adabench.convert)
    ("model.language_model.", "model."),
    ("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
    ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
    ("model.vision_tower.", "model.vision_tower.vision_tower.vision_model."),
    ("lm_head.", "lm_head."),
)
HEAD_TO_ORIGINAL = (
    ("latency_encoder.norm.", "scheduler.scheduler_up_proj.net.0."),
    ("latency_encoder.fc1.", "scheduler.scheduler_up_proj.net.1."),
    ("latency_encoder.fc2.", "scheduler.scheduler_up_proj.net.3."),
    ("scheduler.proj.", "scheduler.mlp_head."),
)


def _rename(key: str, rules) -> str:
    for new, old in rules:
        if key.startswith(new):
            return old + key[len(new) :]
    raise AssertionError(f"no rule for {key}")


def fabricate(tmp_path, variant: str = "L", with_vision: bool = True):
    """Returns (src folder, random Llava, processor, head) of a fake official checkpoint."""
    torch.manual_seed(0)
    model, processor = build_random_llava(layers=4)
    cfg = model.config
    head = AdaLlavaHead(AdaLlavaConfig.for_model(cfg, variant, prefix_layers=2, group_size=2))
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)
    state = {_rename(k, TO_ORIGINAL): v for k, v in model.state_dict().items()}
    if not with_vision:
        state = {k: v for k, v in state.items() if ".vision_tower." not in k}
    state.update({_rename(k, HEAD_TO_ORIGINAL): v for k, v in head.state_dict().items()})
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(
        8
    )  # old checkpoints carry it
    src = tmp_path / "official"
    src.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(src / "model.safetensors"))
    clip = tmp_path / "clip"  # a CLIP folder as on the hub: config + vision_model.* weights
    cfg.vision_config.save_pretrained(clip)
    tower = {
        f"vision_model.{k}": v.contiguous()
        for k, v in model.model.vision_tower.state_dict().items()
    }
    save_file(tower, str(clip / "model.safetensors"))
    text = cfg.text_config
    (src / "config.json").write_text(json.dumps({
        "architectures": ["AdaLlavaLlamaForCausalLM"], "model_type": "ada_llava_llama",
        "vocab_size": text.vocab_size, "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size, "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads, "num_key_value_heads": text.num_key_value_heads,
        "max_position_embeddings": text.max_position_embeddings, "rms_norm_eps": text.rms_norm_eps,
        "hidden_act": "silu", "pad_token_id": text.pad_token_id, "bos_token_id": text.bos_token_id,
        "eos_token_id": text.eos_token_id, "torch_dtype": "float32",
        "mm_vision_tower": str(clip), "mm_hidden_size": cfg.vision_config.hidden_size,
        "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": cfg.vision_feature_layer,
        "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad",
        "num_prefix_layers": 2, "scheduler_type": variant, "scheduler_rank": 2, "token_selecting": "none",
    }))  # fmt: skip
    processor.save_pretrained(src)
    return src, model, processor, head


def _logits(model, processor):
    from PIL import Image

    enc = processor(images=Image.new("RGB", (48, 48), (200, 40, 40)),
                    text="USER: <image>\nwhat color is the square ? ASSISTANT:", return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        return model(**enc).logits


@pytest.mark.parametrize(("variant", "with_vision"), [("L", True), ("H", False)])
def test_round_trip_same_logits(tmp_path, variant, with_vision):
    torch.set_num_threads(1)
    src, model, processor, head = fabricate(tmp_path, variant, with_vision)
    summary = convert_adallava(src, tmp_path / "out", dtype="float32")
    assert (
        summary["variant"] == variant
        and summary["prefix_layers"] == 2
        and summary["token_selecting"] == "none"
    )
    loaded = load_model(str(tmp_path / "out"), device="cpu", dtype="float32")
    assert loaded.variant == variant and loaded.adallava.config.prefix_layers == 2
    assert loaded.adallava.config.group_size == 2
    assert torch.equal(_logits(model, processor), _logits(loaded.model, loaded.processor))
    for key, value in head.state_dict().items():  # the head is stored in float16
        torch.testing.assert_close(loaded.adallava.state_dict()[key], value.half().float())
    assert json.loads((tmp_path / "out" / "conversion.json").read_text())["source"] == str(src)


def test_unknown_names_and_missing_scheduler(tmp_path):
    src, *_ = fabricate(tmp_path)
    from safetensors.torch import load_file

    state = load_file(str(src / "model.safetensors"))
    save_file({**state, "model.mystery.weight": torch.zeros(2)}, str(src / "model.safetensors"))
    with pytest.raises(UserError, match="model.mystery.weight"):
        convert_adallava(src, tmp_path / "out", dtype="float32")
    save_file(
        {k: v for k, v in state.items() if not k.startswith("scheduler.")},
        str(src / "model.safetensors"),
    )
    with pytest.raises(UserError, match="no scheduler"):
        convert_adallava(src, tmp_path / "out", dtype="float32")
    with pytest.raises(UserError, match="huggingface-cli download"):
        convert_adallava("nobody/not-cached-anywhere", tmp_path / "out2")


def test_cli(tmp_path):
    import typer
    from typer.testing import CliRunner

    from adabench.commands import convert as convert_cmd

    app = typer.Typer()
    convert_cmd.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `convert` a sub-group
    src, *_ = fabricate(tmp_path)
    result = CliRunner().invoke(app, ["convert", "adallava", str(src), "--out", str(tmp_path / "o"),
                                      "--dtype", "float32", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["variant"] == "L"
    bad = CliRunner().invoke(
        app, ["convert", "adallava", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "error:" in bad.stderr
