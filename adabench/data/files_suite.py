"""Suites of local image files: `source.type: files`, one manifest (JSONL or CSV) per split.

    name: my-photos
    source: {type: files}
    splits: {test: photos/test.jsonl}   # relative to this YAML (or {manifest: PATH})
    prompt: "USER: <image>\\n{question} ASSISTANT:"
    metric: vqa
    max_new_tokens: 8

A manifest row has `image` (a path, relative to the manifest's folder unless absolute),
`question`, and `answers` (a JSON list in JSONL; in CSV a `|`-separated string) or `answer` (one
string); optional `id` (default: the row number) and `family`; any other column is copied into
`Sample.meta`. Images are decoded when a sample's `image` is read (never kept), through
`adabench.data.images`, so a bad file is reported with its sample id.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from adabench.data.images import FileImage
from adabench.data.sample import Sample, SuiteSpec
from adabench.errors import UserError

MANIFEST_SUFFIXES = (".jsonl", ".csv")
REQUIRED_COLUMNS = ("image", "question")


def manifest_path(spec: SuiteSpec, split: str) -> Path:
    """Returns the manifest file of `split` (relative paths resolved against the suite YAML's
    folder). UserError when the split entry is malformed or the file is missing."""
    entry = spec.splits[split]
    value = entry.get("manifest") if isinstance(entry, dict) else entry
    if not isinstance(value, str) or not value:
        raise UserError(
            f"suite {spec.name!r}: split {split!r} must name a manifest file "
            f"(test: data/test.jsonl or test: {{manifest: data/test.jsonl}}), got {entry!r}"
        )
    path = Path(value).expanduser()
    if not path.is_absolute() and spec.path is not None:
        path = spec.path.parent / path
    if path.suffix not in MANIFEST_SUFFIXES:
        raise UserError(f"suite {spec.name!r}: manifest {path} must be a .jsonl or .csv file")
    if not path.is_file():
        raise UserError(f"suite {spec.name!r}: manifest {path} not found")
    return path


def _rows(path: Path) -> list[tuple[int, dict]]:
    """Returns (line number, row) of a manifest; UserError naming the line of a malformed one."""
    rows = []
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                answers = row.pop("answers", None)
                if answers is not None:
                    row["answers"] = [a.strip() for a in answers.split("|") if a.strip()]
                rows.append((line, row))
        return rows
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{line}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{line}: a manifest line must be a JSON object")
        rows.append((line, row))
    return rows


def _answers(path: Path, line: int, row: dict) -> list[str]:
    if "answers" in row:
        value = row["answers"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{path}:{line}: answers must be a list of strings")
        return [str(a) for a in value if str(a).strip()]
    if "answer" in row and row["answer"] is not None and str(row["answer"]).strip():
        return [str(row["answer"])]
    return []


def load_files(spec: SuiteSpec, split: str, limit: int | None = None) -> list[Sample]:
    """Returns the first `limit` rows of `split`'s manifest as lazily decoded Samples (all when
    None). UserError naming the file and line for a missing column."""
    from adabench.data.hf_suites import LazySample

    path = manifest_path(spec, split)
    samples: list[Sample] = []
    for index, (line, row) in enumerate(_rows(path)):
        if limit is not None and len(samples) >= limit:
            break
        missing = [c for c in REQUIRED_COLUMNS if not str(row.get(c) or "").strip()]
        if missing:
            raise UserError(f"{path}:{line}: missing {', '.join(missing)}")
        image = Path(str(row["image"])).expanduser()
        if not image.is_absolute():
            image = path.parent / image
        known = {"id", "image", "question", "answers", "answer", "family"}
        samples.append(
            LazySample(
                str(row.get("id") if row.get("id") not in (None, "") else index),
                FileImage(image),
                str(row["question"]),
                _answers(path, line, row),
                str(row.get("family") or ""),
                {"image_file": str(image), **{k: v for k, v in row.items() if k not in known}},
            )
        )
    return samples
