"""`adabench flops`: config-only FLOPs per budget against closed forms and the AdaLLaVA paper."""

from __future__ import annotations

import json
import resource

import pytest
from typer.testing import CliRunner

from adabench.cli import app
from adabench.flops_table import FlopsQuery, flops_table

runner = CliRunner()
D7, I7, N7 = 4096, 11008, 32


def block_7b(s: int) -> int:
    """Closed form of one LLaVA-1.5-7B decoder block on s tokens: q,k,v,o + QKᵀ, AV + MLP."""
    return 8 * s * D7 * D7 + 4 * s * s * D7 + 6 * s * D7 * I7


def rows_for(
    method: str, budgets=(1.0, 0.85, 0.6), model: str = "llava-1.5-7b", **kw
) -> list[dict]:
    return flops_table(FlopsQuery(model=model, method=method, budgets=budgets, **kw))


def test_paper_check_llava_7b_adallava_l():
    """docs/adallava.md: 8.6 / 7.2 / 5.1 TFLOPs at budgets 1.0 / 0.85 / 0.6 (576 image + 64 prompt)."""
    rows = rows_for("adallava-l", image_tokens=576, prompt_tokens=64)
    for row, paper, ratio in zip(rows, (8.6, 7.2, 5.1), (1.0, 27 / 32, 19 / 32), strict=True):
        assert row["seq_len"] == 641 and row["latency_tokens"] == 1
        assert row["prefill_llm_tflops"] == pytest.approx(paper, rel=0.02)
        assert row["prefill_llm_tflops_no_latency_token"] == pytest.approx(paper, rel=0.02)
        assert row["flops_ratio"] == pytest.approx(ratio, abs=1e-9)
    assert [r["units"] for r in rows] == ["32/32 blocks", "27/32 blocks", "19/32 blocks"]


def test_closed_forms_7b():
    s = 576 + 64
    full = rows_for("full", budgets=(1.0,))[0]
    assert full["prefill_llm_flops"] == N7 * block_7b(s) == full["llm_flops"]
    ada = rows_for("adallava-l")
    assert [r["prefill_llm_flops"] for r in ada] == [k * block_7b(s + 1) for k in (32, 27, 19)]
    assert [r["prefill_llm_flops_no_latency_token"] for r in ada] == [
        k * block_7b(s) for k in (32, 27, 19)
    ]
    # AdaLLaVA-H: 4 units of 8 heads + 8 MLP groups per block, 64 prefix units: 108/128, 76/128.
    h = rows_for("adallava-h")
    assert [r["units"] for r in h] == ["128/128 units", "108/128 units", "76/128 units"]
    assert [r["flops_ratio"] for r in h] == pytest.approx([1.0, 108 / 128, 76 / 128])
    # FastV K=2, R=0.5: blocks 0, 1 on 640 tokens, blocks 2..31 on 640 − 288.
    fastv = rows_for("fastv", budgets=(1.0,), method_args={"k": "2", "r": "0.5"})[0]
    assert fastv["prefill_llm_flops"] == 2 * block_7b(s) + 30 * block_7b(s - 288)
    # Decode: step j attends to s + j keys; the lm_head runs once per generated token.
    gen = rows_for("early-exit", budgets=(0.5,), new_tokens=3)[0]
    step = lambda c: 8 * D7 * D7 + 4 * c * D7 + 6 * D7 * I7  # noqa: E731
    assert gen["llm_flops"] == 16 * (block_7b(s) + step(s + 1) + step(s + 2))
    assert gen["lm_head_flops"] == 3 * 2 * D7 * 32064
    # Vision: CLIP ViT-L/14-336 over 577 tokens (24 layers) + patch conv + the projector.
    n, dv = 577, 1024
    vision = 2 * 576 * 3 * 14 * 14 * dv + 24 * (
        8 * n * dv * dv + 4 * n * n * dv + 4 * n * dv * 4096
    )
    assert full["vision_flops"] == vision + 2 * 576 * dv * D7 + 2 * 576 * D7 * D7
    assert full["flops"] == full["vision_flops"] + full["llm_flops"] + full["lm_head_flops"]


def test_methods_follow_the_registered_implementations():
    # head-prune: AdaLLaVA-H's units (P = N/2 prefix), no latency token.
    prune, ada_h = rows_for("head-prune"), rows_for("adallava-h")
    assert [r["units"] for r in prune] == [r["units"] for r in ada_h]
    assert [r["prefill_llm_flops"] for r in prune] == [
        r["prefill_llm_flops_no_latency_token"] for r in ada_h
    ]
    # fastv alone: the smallest R whose ratio fits the budget (R = 0 at 1.0).
    fastv = rows_for("fastv", budgets=(1.0, 0.6))
    assert fastv[0]["fastv_removed"] == 0 and fastv[1]["flops_ratio"] <= 0.6
    one_less = rows_for(
        "fastv", budgets=(1.0,), method_args={"r": str((fastv[1]["fastv_removed"] - 1) / 576)}
    )
    assert one_less[0]["flops_ratio"] > 0.6
    # X+fastv, either order: X takes the budget, FastV runs at r = 0.5 (the paper's 4.9/4.2/3.0 T).
    combo = rows_for("fastv+adallava-l")
    other_order = rows_for("adallava-l+fastv")
    assert [r["prefill_llm_flops"] for r in combo] == [r["prefill_llm_flops"] for r in other_order]
    assert [r["fastv_removed"] for r in combo] == [288] * 3
    assert [round(r["prefill_llm_tflops"], 1) for r in combo] == [4.9, 4.2, 3.0]


def test_13b_works_without_memory():
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = rows_for("adallava-l", model="llava-1.5-13b")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before_mb < 100
    assert [r["units"] for r in rows] == ["40/40 blocks", "34/40 blocks", "24/40 blocks"]
    assert rows[0]["prefill_llm_tflops"] == pytest.approx(16.60, abs=0.01)
    assert [r["flops_ratio"] for r in rows] == pytest.approx([1.0, 0.85, 0.6])


def test_tiny_folder_config(random_llava_dir):
    rows = rows_for("adallava-h", budgets=(1.0, 0.75), model=str(random_llava_dir), prompt_tokens=8)
    assert rows[0]["image_tokens"] == 9 and rows[0]["seq_len"] == 18
    assert rows[1]["flops_ratio"] == pytest.approx(0.75)


def test_cli_json_shape():
    result = runner.invoke(
        app,
        [
            "flops",
            "--model",
            "llava-1.5-7b",
            "--method",
            "adallava-l",
            "--budgets",
            "1.0,0.85,0.6",
            "--image-tokens",
            "576",
            "--prompt-tokens",
            "64",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["budget"] for r in rows] == [1.0, 0.85, 0.6]
    for row in rows:
        assert {
            "budget",
            "flops",
            "llm_flops",
            "flops_ratio",
            "vision_flops",
            "prefill_llm_tflops",
        } <= set(row)
    assert [round(r["prefill_llm_tflops"], 1) for r in rows] == [8.5, 7.2, 5.1]


def test_cli_table_and_errors():
    table = runner.invoke(
        app, ["flops", "--model", "llava-1.5-13b", "--method", "layer-drop", "--budgets", "1,0.5"]
    )
    assert table.exit_code == 0 and "llava-1.5-13b" in table.stdout
    for args, needle in [
        (["--method", "fulll"], "did you mean"),
        (["--method", "prumerge"], "image-dependent"),
        (["--method", "adallava-l", "--budgets", "0.4"], "minimum is 0.5"),
        (["--budgets", "1.5"], "budget"),
        (["--model", "llava-9b"], "no config"),
    ]:
        result = runner.invoke(app, ["flops", *args])
        assert result.exit_code == 2, (args, result.stdout)
        assert needle.lower() in result.stderr.lower()
