"""Suites from public `datasets` sources (VQAv2, GQA, TextVQA, ScienceQA-IMG, POPE, MME, MMBench).

A suite YAML with `source.type: hf` names the dataset (`source.path`, `source.name`), maps each
adabench split to a dataset split (`splits: {test: {split: validation, filter: {...}}}`), and
maps columns with `fields:`. The loader builds the full question text (hint, question, lettered
options, OCR tokens, post-prompt) into `Sample.question`; the suite's `prompt` then wraps it in
the model's chat format. Data comes from a local copy first (`data_dir` argument,
`source.data_dir`, then $ADABENCH_DATA_DIR: `<root>/<path>/<name or default>/<split>/`, a
`save_to_disk` folder or parquet files), else `datasets.load_dataset` through the user's cache.

`fields:` keys: id (column or list of columns), image, question, answers, answer_key (key inside
a list of dicts), answer_format (list | single | index | letter), choices (list column) or
choice_columns (one column per option), hint, family, ocr_tokens, image_id (join key into
`source.images`), meta (columns copied into Sample.meta).

Images are decoded lazily: each sample is a `LazySample` whose `image` is read from the
(memory-mapped) dataset when accessed and never kept, so loading VQAv2's 214k questions holds
row indices, not 214k decoded images.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any

from adabench.data.images import ImageSource, to_rgb
from adabench.data.sample import Sample, SuiteSpec
from adabench.data.sample_checks import unique_ids
from adabench.errors import UserError

DATA_DIR_ENV = "ADABENCH_DATA_DIR"
IMAGE_PREPROCESS = ("none", "pad")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""CLIP's per-channel image mean (0..1): LLaVA's pad colour and the synthetic processor's mean."""


# ---------------------------------------------------------------- images


def expand_to_square(image, background: tuple[int, ...]):
    """Returns `image` padded to a square with `background` (LLaVA-1.5's `expand2square`): the
    original is centred on the longer side; a square image is returned unchanged."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    result = Image.new(image.mode, (side, side), background)
    result.paste(image, ((side - width) // 2, (side - height) // 2))
    return result


def mean_background(image_processor) -> tuple[int, int, int]:
    """Returns the processor's `image_mean` as an RGB colour in 0..255 (LLaVA's pad colour)."""
    mean = getattr(image_processor, "image_mean", None) or CLIP_MEAN
    return tuple(int(round(x * 255)) for x in mean)


def image_preprocess(spec: SuiteSpec) -> str:
    """Returns the suite's recorded image preprocessing: "pad" (LLaVA-1.5) or "none"."""
    mode = str(spec.extra.get("image_preprocess", "none"))
    if mode not in IMAGE_PREPROCESS:
        raise UserError(
            f"suite {spec.name!r}: image_preprocess must be one of {IMAGE_PREPROCESS}, got {mode!r}"
        )
    return mode


def prepare_image(spec: SuiteSpec, image, processor):
    """Returns `image` as the model should see it under the suite's `image_preprocess`
    (padded to a square with the processor's mean colour for "pad", unchanged for "none")."""
    if image_preprocess(spec) == "pad":
        ip = getattr(processor, "image_processor", processor)
        return expand_to_square(image.convert("RGB"), mean_background(ip))
    return image


# ---------------------------------------------------------------- data access


def data_root(spec: SuiteSpec, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Returns the local-copy root: `data_dir`, else `source.data_dir`, else $ADABENCH_DATA_DIR."""
    root = data_dir or spec.source.get("data_dir") or os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser() if root else None


def local_path(root: Path, path: str, name: str | None, split: str) -> Path:
    """Returns where a local copy of (path, name, split) lives under `root`."""
    return root / path / (name or "default") / split


def _open_local(folder: Path):
    import datasets

    if (folder / "state.json").exists():
        return datasets.load_from_disk(str(folder))
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    if files:
        return datasets.load_dataset("parquet", data_files=files, split="train")
    return None


def open_split(path: str, name: str | None, split: str, root: Path | None):
    """Returns the `datasets.Dataset` for (path, name, split): the local copy under `root` when
    there is one, else `datasets.load_dataset` (user's HF cache). Raises UserError saying how to
    get the data when neither has it."""
    import datasets

    if root is not None:
        folder = local_path(root, path, name, split)
        if folder.is_dir():
            ds = _open_local(folder)
            if ds is not None:
                return ds
    try:
        return datasets.load_dataset(path, name, split=split)
    except (OSError, ValueError, ConnectionError, datasets.exceptions.DatasetsError) as exc:
        where = local_path(root or Path(f"${DATA_DIR_ENV}"), path, name, split)
        raise UserError(
            f"dataset {path}{f' ({name})' if name else ''} split {split!r} is not available here "
            f"({exc.__class__.__name__}). Get it on a machine with network access with "
            f"`huggingface-cli download --repo-type dataset {path}` (fills the HF cache used here), "
            f"or set {DATA_DIR_ENV} to a folder holding {where} (a datasets.save_to_disk folder "
            f"or *.parquet files)."
        ) from exc


# ---------------------------------------------------------------- lazy images


class ImageLoader(ImageSource):
    """Decodes the image of row `index` of `images` (a one-column dataset view) when called."""

    def __init__(self, images, index: int, column: str) -> None:
        self.images, self.index, self.column = images, index, column

    def __call__(self):
        """Returns the row's image as an RGB PIL image (decoded now, not cached)."""
        return to_rgb(self.images[self.index][self.column])

    def describe(self) -> str:
        """Returns the row and column, with the file the dataset recorded when it has one."""
        where = f"row {self.index}, column {self.column!r}"
        try:
            raw = self.images.with_format("arrow")[self.index][self.column][0].as_py()
            path = raw.get("path") if isinstance(raw, dict) else None
        except Exception:  # describing must never fail: the row is what matters
            path = None
        return f"{path} ({where})" if path else where


class LazySample(Sample):
    """A Sample whose `image` is decoded from its source (a dataset row, a file) on every read
    (RGB PIL image) and not kept. Assigning a PIL image (or an `ImageSource`) replaces it."""

    @property
    def image(self):
        source = self.image_source
        return source() if isinstance(source, ImageSource) else source

    @image.setter
    def image(self, value) -> None:
        self.__dict__["_image_source"] = value

    @property
    def image_source(self):
        """Returns the `ImageSource` (or the image itself), without decoding anything."""
        return self.__dict__["_image_source"]


def _image_source(sample: Sample):
    return sample.image_source if isinstance(sample, LazySample) else sample.image


# ---------------------------------------------------------------- rows → samples


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and value.strip().lower() in ("", "nan", "none"))  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _options(fields: dict, row: dict) -> list[str]:
    if "choices" in fields:
        return [str(c) for c in row[fields["choices"]]]
    opts = []
    for col in fields.get("choice_columns", []):
        if col in row and not _is_missing(row[col]):
            opts.append(str(row[col]))
    return opts


def _answers(fields: dict, row: dict, options: list[str]) -> list[str]:
    if "answers" not in fields:
        return []
    value = row[fields["answers"]]
    fmt = fields.get("answer_format", "list")
    if value is None:
        return []  # hidden test answers (e.g. VQAv2 test-dev)
    if fmt == "index":
        return [string.ascii_uppercase[int(value)]]
    if fmt in ("single", "letter"):
        return [str(value).strip()]
    key = fields.get("answer_key")
    return [str(a[key]) if key else str(a) for a in value]


def build_question(spec: SuiteSpec, row: dict, options: list[str]) -> str:
    """Returns the question text of one row: hint, question, lettered options, OCR tokens and
    the suite's post-prompt, in LLaVA-1.5's evaluation format."""
    fields, extra = spec.fields, spec.extra
    question = str(row[fields["question"]])
    for text in extra.get("strip", []) or []:
        question = question.replace(text, "")
    question = question.strip()
    hint = row.get(fields["hint"]) if "hint" in fields else None
    if not _is_missing(hint):
        question = extra.get("hint_template", "{hint}\n").format(hint=str(hint).strip()) + question
    if options:
        question += "\n" + "\n".join(
            f"{string.ascii_uppercase[i]}. {o}" for i, o in enumerate(options)
        )
    if extra.get("ocr") and "ocr_tokens" in fields:
        question += "\nReference OCR token: " + ", ".join(str(t) for t in row[fields["ocr_tokens"]])
    return question + str(extra.get("post_prompt", ""))


def _row_id(fields: dict, row: dict, index: int) -> str:
    key = fields.get("id")
    if key is None:
        return str(index)
    cols = key if isinstance(key, list) else [key]
    return "/".join(str(row[c]) for c in cols)


def _rotations(sample: Sample, options: list[str]) -> list[Sample]:
    """Returns the circular variants of a choice sample: options rotated by k = 0..n−1."""
    gold = string.ascii_uppercase.index(sample.answers[0])
    out = []
    for k in range(len(options)):
        rotated = options[k:] + options[:k]
        spec_q = (
            sample.meta["_stem"]
            + "\n"
            + "\n".join(f"{string.ascii_uppercase[i]}. {o}" for i, o in enumerate(rotated))
        )
        out.append(LazySample(
            id=sample.id if k == 0 else f"{sample.id}@{k}",
            image=_image_source(sample),
            question=spec_q + sample.meta["_post"],
            answers=[string.ascii_uppercase[(gold - k) % len(options)]],
            family=sample.family,
            meta={**{m: v for m, v in sample.meta.items() if not m.startswith("_")},
                  "circular_index": k, "circular_group": sample.id, "options": rotated},
        ))  # fmt: skip
    return out


def _row_sample(spec: SuiteSpec, row: dict, index: int, image) -> Sample:
    fields = spec.fields
    options = _options(fields, row)
    answers = _answers(fields, row, options)
    meta = {c: _jsonable(row.get(c)) for c in fields.get("meta", []) or []}
    if options:
        meta["options"] = options
    family = str(row[fields["family"]]) if "family" in fields else ""
    sample = LazySample(
        _row_id(fields, row, index),
        image,
        build_question(spec, row, options),
        answers,
        family,
        meta,
    )
    if options and spec.extra.get("circular"):
        post = str(spec.extra.get("post_prompt", ""))
        stem_only = build_question(spec, row, [])
        sample.meta["_stem"] = stem_only[: len(stem_only) - len(post)] if post else stem_only
        sample.meta["_post"] = post
    return sample


def _split_entry(spec: SuiteSpec, split: str) -> dict:
    entry = spec.splits[split]
    if isinstance(entry, str):
        return {"split": entry}
    if not isinstance(entry, dict) or "split" not in entry:
        raise UserError(
            f"suite {spec.name!r}: split {split!r} must map to {{split: NAME, ...}}, got {entry!r}"
        )
    return entry


def _indices(ds, entry: dict, limit: int | None) -> list[int]:
    wanted = entry.get("filter") or {}
    if not wanted:
        n = len(ds) if limit is None else min(limit, len(ds))
        return list(range(n))
    cols = {c: ds[c] for c in wanted}  # column reads only: images are not decoded
    keep = [i for i in range(len(ds)) if all(str(cols[c][i]) == str(v) for c, v in wanted.items())]
    return keep if limit is None else keep[:limit]


class _ImageJoin:
    """Images kept in a second config and joined by id (GQA's testdev_balanced_images)."""

    def __init__(self, spec: SuiteSpec, root: Path | None) -> None:
        cfg = spec.source["images"]
        ds = open_split(spec.source["path"], cfg.get("name"), cfg["split"], root)
        self.column = cfg.get("image", "image")
        self.images = ds.select_columns([self.column])
        keys = ds.select_columns([cfg.get("key", "id")])[cfg.get("key", "id")]
        self.index = {str(k): i for i, k in enumerate(keys)}

    def loader(self, key: Any) -> ImageLoader:
        """Returns the loader of the image whose key is `key`; UserError if there is none."""
        if str(key) not in self.index:
            raise UserError(f"image {key!r} not found in the images config of this suite")
        return ImageLoader(self.images, self.index[str(key)], self.column)


def load_hf(
    spec: SuiteSpec, split: str, limit: int | None = None, data_dir: str | os.PathLike | None = None
) -> list[Sample]:
    """Returns the first `limit` questions of `split` of an hf suite as Samples (all when None).

    With `circular: true` (MMBench) each choice question yields one sample per rotation of its
    options (ids `ID`, `ID@1`, ...; meta `circular_group`, `circular_index`), so `limit` counts
    questions, not samples. Images are RGB PIL images, unpadded (see `prepare_image`), decoded
    each time a sample's `image` is read (see `LazySample`).
    """
    root = data_root(spec, data_dir)
    entry = _split_entry(spec, split)
    ds = open_split(spec.source["path"], spec.source.get("name"), entry["split"], root)
    join = _ImageJoin(spec, root) if spec.source.get("images") else None
    column = spec.fields.get("image", "image")
    images = None if join else ds.select_columns([column])
    rows = ds.remove_columns([column]) if column in ds.column_names else ds  # no decoding
    questions: list[Sample] = []
    for i in _indices(ds, entry, limit):
        row = rows[i]
        image = (
            join.loader(row[spec.fields["image_id"]]) if join else ImageLoader(images, i, column)
        )
        questions.append(_row_sample(spec, row, i, image))
    samples: list[Sample] = []
    for sample in unique_ids(spec, questions):  # e.g. MME: two questions per image id
        if "_stem" in sample.meta:
            samples.extend(_rotations(sample, sample.meta["options"]))
        else:
            samples.append(sample)
    return samples


# ---------------------------------------------------------------- validation


def default_fixture_dir() -> Path | None:
    """Returns the repository's tests/fixtures/suites folder when present (source checkouts)."""
    path = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "suites"
    return path if path.is_dir() else None


def _feature_problems(spec: SuiteSpec, features, where: str) -> list[str]:
    fields, problems = spec.fields, []
    cols = set(features)
    singles = [
        "image_id" if spec.source.get("images") else "image",
        "question",
        "answers",
        "hint",
        "family",
        "ocr_tokens",
        "choices",
    ]
    wanted = [fields[k] for k in singles if k in fields] + list(fields.get("meta", []) or [])
    wanted += list(
        fields["id"]
        if isinstance(fields.get("id"), list)
        else [fields["id"]]
        if "id" in fields
        else []
    )
    for col in wanted:
        if col not in cols:
            problems.append(
                f"{where}: field column {col!r} not in the dataset ({', '.join(sorted(cols))})"
            )
    key = fields.get("answer_key")
    if key and fields.get("answers") in cols:
        feat = features[fields["answers"]]
        inner = getattr(feat, "feature", feat[0] if isinstance(feat, list) and feat else feat)
        if not (isinstance(inner, dict) and key in inner):
            problems.append(f"{where}: answers column {fields['answers']!r} has no key {key!r}")
    for col in fields.get("choice_columns", []) or []:
        if col not in cols:
            problems.append(f"{where}: choice column {col!r} not in the dataset")
    return problems


def validate_fixture(spec: SuiteSpec, fixture_dir: str | os.PathLike) -> list[str]:
    """Returns the problems (empty when none) of an hf suite against its local fixture: every
    split's data exists under `fixture_dir`, every mapped column exists in its schema, filters
    name existing columns, and one sample loads and renders through the real loader."""
    if spec.source.get("type") != "hf":
        return []
    root, problems = Path(fixture_dir), []
    path, name = spec.source.get("path"), spec.source.get("name")
    if not path:
        return [f"{spec.name}: source.path is missing"]
    for split in spec.splits:
        entry = _split_entry(spec, split)
        folder = local_path(root, path, name, entry["split"])
        ds = _open_local(folder) if folder.is_dir() else None
        if ds is None:
            problems.append(f"{spec.name}/{split}: no fixture at {folder}")
            continue
        problems += _feature_problems(spec, ds.features, f"{spec.name}/{split}")
        for col in entry.get("filter") or {}:
            if col not in ds.features:
                problems.append(f"{spec.name}/{split}: filter column {col!r} not in the dataset")
    if spec.source.get("images"):
        cfg = spec.source["images"]
        folder = local_path(root, path, cfg.get("name"), cfg["split"])
        ds = _open_local(folder) if folder.is_dir() else None
        if ds is None:
            problems.append(f"{spec.name}: no images fixture at {folder}")
        else:
            for col in (cfg.get("key", "id"), cfg.get("image", "image")):
                if col not in ds.features:
                    problems.append(f"{spec.name}: images column {col!r} not in the images dataset")
    if not problems:
        try:
            for split in spec.splits:
                for sample in load_hf(spec, split, 1, data_dir=root):
                    spec.render_prompt(sample)
        except (UserError, KeyError, ValueError, IndexError, TypeError) as exc:
            problems.append(
                f"{spec.name}: loading the fixture failed: {exc.__class__.__name__}: {exc}"
            )
    return problems
