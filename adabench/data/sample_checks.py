"""Checks every suite source's samples pass at load: each has an answer (unless its split
declares the answers hidden) and ids are unique (repeats renamed, with a warning)."""

from __future__ import annotations

from adabench.data.sample import Sample, SuiteSpec
from adabench.errors import UserError


def hidden_answers(spec: SuiteSpec, split: str) -> bool:
    """Returns whether `split` declares its answers hidden (`{split: X, hidden_answers: true}`,
    e.g. VQAv2 test-dev: predictions are exported and scored elsewhere)."""
    entry = spec.splits.get(split)
    return isinstance(entry, dict) and bool(entry.get("hidden_answers"))


def check_answers(spec: SuiteSpec, split: str, samples: list[Sample]) -> None:
    """Raises UserError naming the samples (up to 5, and the count) that have no answer, unless
    the split declares its answers hidden: such a sample would score NaN and hide in the mean."""
    if hidden_answers(spec, split):
        return
    empty = [s.id for s in samples if not [a for a in s.answers if str(a).strip()]]
    if empty:
        shown = ", ".join(repr(i) for i in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise UserError(
            f"suite {spec.name!r}/{split}: {len(empty)} sample(s) without an answer: {shown} "
            "(give each an answer, or mark the split `hidden_answers: true`)"
        )


def unique_ids(spec: SuiteSpec, samples: list[Sample]) -> list[Sample]:
    """Returns `samples` with repeated ids renamed ID#1, ID#2, ... in place, warning with the
    count unless the suite says `duplicate_ids: expected` (MME: two questions per image)."""
    seen: dict[str, int] = {}
    renamed = []
    for s in samples:
        if s.id in seen:
            seen[s.id] += 1
            new = f"{s.id}#{seen[s.id]}"
            while new in seen:
                seen[s.id] += 1
                new = f"{s.id}#{seen[s.id]}"
            renamed.append(s.id)
            s.id = new
            seen[new] = 0
        else:
            seen[s.id] = 0
    if renamed and spec.extra.get("duplicate_ids") != "expected":
        from adabench import console

        shown = ", ".join(repr(i) for i in dict.fromkeys(renamed))
        console.warn(
            f"suite {spec.name!r}: {len(renamed)} repeated sample id(s) renamed ID#1, ID#2, ...: "
            f"{shown if len(shown) < 120 else shown[:117] + '...'}"
        )
    return samples
