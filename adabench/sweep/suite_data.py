"""A sweep's suite data, checked before the first cell: every image decodes and every prompt
fits each model's context window.

A bad image (0-byte, corrupt, truncated, missing) stops the sweep with one line naming the
sample and file before a run folder is made — or, with `skip_bad_samples`, the sample is left
out of every cell and listed in meta.json (`skipped_samples`). A prompt whose tokens plus
`max_new_tokens` exceed the model's context is refused naming the sample and both numbers,
unless the suite says `truncate: left|right` (then `prepare_samples` cuts the question and
records `truncated_tokens` per sample). docs/suites.md describes both.
"""

from __future__ import annotations

from adabench import console
from adabench.config import SweepConfig
from adabench.errors import UserError

TRUNCATE_MODES = ("left", "right")
"""Values of a suite's `truncate:` that cut an over-long question instead of refusing it."""

_BAD: dict[tuple, tuple[list[dict], int]] = {}


def bad_samples(suite: str, split: str, limit: int | None, skip_bad: bool) -> list[dict]:
    """Returns the samples of `suite` whose image cannot be read (rows of
    `adabench.data.images.check_images`), decoding each image once per process (per sample
    list: the same ids from the same files). Raises the
    first one's one-line UserError (with the count of the others) unless `skip_bad`."""
    from adabench.data.images import check_images, describe_source
    from adabench.data.suites import load_suite

    samples = load_suite(suite, split=split, limit=limit, seed=0)  # no image decoded here
    key = (suite, split, tuple((s.id, describe_source(s)) for s in samples))
    if key not in _BAD:
        good, bad = check_images(samples, True)
        _BAD[key] = (bad, len(good))
    bad, n_good = _BAD[key]
    if bad and not skip_bad:
        more = f" ({len(bad) - 1} more bad image(s) in suite {suite!r})" if len(bad) > 1 else ""
        raise UserError(bad[0]["message"] + more)
    if bad and not n_good:
        raise UserError(
            f"suite {suite!r}: every sample's image is unreadable, e.g. " + bad[0]["message"]
        )
    return bad


def context_positions(config) -> int | None:
    """Returns the decoder's context window in positions (`max_position_embeddings` of the
    text config), or None when the config does not say."""
    text = getattr(config, "text_config", config)
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if value else None


def overflow_message(
    suite: str, sample_id: str, model: str, tokens: int, new_tokens: int, context: int
) -> str:
    """Returns the one-line refusal of a prompt that does not fit `model`'s context."""
    return (
        f"suite {suite!r}, sample {sample_id!r}: prompt of {tokens} tokens (visual tokens "
        f"included) + max_new_tokens {new_tokens} = {tokens + new_tokens} > {model}'s context of "
        f"{context} positions; shorten the question, lower --max-new-tokens, or set "
        "`truncate: left` (or right) in the suite to cut the question to fit"
    )


def overflowing(
    model: str, suite: str, cfg: SweepConfig, new_tokens: int
) -> tuple[int | None, list[tuple[str, int]], list[tuple[str, int]]]:
    """Returns (the model's context in positions or None, (sample id, prompt tokens) of every
    sample, those whose tokens + `new_tokens` exceed the context)."""
    from adabench.models import catalog
    from adabench.sweep.reachability import prompt_lengths

    config = catalog.config_for(model)
    context = context_positions(config)
    lengths = prompt_lengths(model, suite, cfg, config)
    over = [(i, n) for i, n in lengths if context and n + new_tokens > context]
    return context, lengths, over


def left_out_text(bad: list[dict]) -> str:
    """Returns the listing of samples left out for an unreadable image: "ID (FILE), ..."."""
    return ", ".join(f"{b['sample_id']} ({b['image']})" for b in bad)


def check_context(cfg: SweepConfig) -> None:
    """Raises UserError naming the first sample (and the count) whose prompt plus the answer
    does not fit a model's context, for every (model, suite) of `cfg` whose suite does not
    truncate."""
    from adabench.data.suites import get_spec

    for suite in cfg.suites:
        spec = get_spec(suite)
        if spec.extra.get("truncate") in TRUNCATE_MODES:
            continue
        new_tokens = cfg.max_new_tokens or spec.max_new_tokens
        for model in cfg.models:
            context, _, over = overflowing(model, suite, cfg, new_tokens)
            if over:
                more = f" ({len(over) - 1} more such sample(s))" if len(over) > 1 else ""
                raise UserError(
                    overflow_message(suite, over[0][0], model, over[0][1], new_tokens, context)
                    + more
                )


def check_suite_data(cfg: SweepConfig) -> None:
    """Checks every image and every prompt's fit; raises UserError where `cfg` does not allow
    skipping. Warns listing the samples left out."""
    for suite, bad in _bad_by_suite(cfg, cfg.skip_bad_samples).items():
        console.warn(
            f"suite {suite!r}: {len(bad)} sample(s) left out for an unreadable image "
            f"(--skip-bad-samples): " + left_out_text(bad)
        )
    check_context(cfg)


def _bad_by_suite(cfg: SweepConfig, skip_bad: bool) -> dict[str, list[dict]]:
    out = {}
    for suite in cfg.suites:
        if bad := bad_samples(suite, cfg.split, cfg.limit, skip_bad):
            out[suite] = bad
    return out


def skipped_samples(cfg: SweepConfig) -> dict[str, list[dict]]:
    """Returns {suite: [{sample_id, image, problem}]} of the samples left out for an
    unreadable image (suites without any omitted): what meta.json records."""
    return {suite: [{k: b[k] for k in ("sample_id", "image", "problem")} for b in bad]
            for suite, bad in _bad_by_suite(cfg, True).items()}  # fmt: skip


def skipped_ids(suite: str, cfg: SweepConfig) -> set[str]:
    """Returns the ids of `suite`'s samples that the sweep leaves out (empty without
    `skip_bad_samples`, where a bad image has already stopped the sweep)."""
    if not cfg.skip_bad_samples:
        return set()
    return {b["sample_id"] for b in bad_samples(suite, cfg.split, cfg.limit, True)}


def suite_checks(name: str, model: str | None = None, limit: int | None = None) -> list[dict]:
    """Returns one row per (split, check) of suite `name`'s own data — {split, check, ok,
    detail}: every sample loads with an answer, every image decodes, and with `model` every
    prompt plus the suite's max_new_tokens fits the model's context (or the suite truncates).
    Reads the data where `eval` reads it; `limit` checks the first N samples of each split."""
    from adabench.data.images import check_images
    from adabench.data.suites import get_spec, load_suite

    spec = get_spec(name)
    rows = []
    for split in spec.splits:
        row = {"split": split}
        try:
            samples = load_suite(name, split=split, limit=limit, seed=0)
        except UserError as exc:
            rows.append({**row, "check": "load", "ok": False, "detail": str(exc)})
            continue
        rows.append({**row, "check": "load", "ok": True, "detail": f"{len(samples)} samples"})
        good, bad = check_images(samples, skip_bad=True)
        detail = f"{len(good)} of {len(samples)} decode"
        if bad:
            detail += (
                "; unreadable: "
                + "; ".join(f"{b['sample_id']} ({b['image']}: {b['problem']})" for b in bad[:5])
                + (f"; {len(bad) - 5} more" if len(bad) > 5 else "")
            )
        rows.append({**row, "check": "images", "ok": not bad, "detail": detail})
        if model is None:
            continue
        cfg = SweepConfig(models=[model], suites=[name], split=split, limit=limit)
        new_tokens = spec.max_new_tokens
        context, lengths, over = overflowing(model, name, cfg, new_tokens)
        longest = max((n for _, n in lengths), default=0)
        detail = (
            f"longest prompt {longest} tokens + max_new_tokens {new_tokens} vs {model}'s "
            f"context of {context} positions"
        )
        truncates = spec.extra.get("truncate") in TRUNCATE_MODES
        if over:
            detail += f"; {len(over)} over: " + ", ".join(repr(i) for i, _ in over[:5])
            detail += f" (truncated {spec.extra['truncate']})" if truncates else ""
        rows.append({**row, "check": "context", "ok": not over or truncates, "detail": detail})
    return rows
