"""Suites are data: `suites/*.yaml` (with `include:`) → `SuiteSpec` → a list of `Sample`.

A suite YAML names its source (procedural generator or a `datasets` dataset), splits, field
mapping, prompt template, answer type, metric (optionally per question family) and
max_new_tokens. Files are read with `yaml.safe_load` only.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from adabench.data.files_suite import load_files
from adabench.data.hf_suites import data_root, default_fixture_dir, load_hf, validate_fixture
from adabench.data.sample import Sample, SuiteSpec
from adabench.data.sample_checks import check_answers, unique_ids
from adabench.errors import UserError, did_you_mean

REQUIRED_KEYS = ("name", "source", "splits", "prompt", "metric", "max_new_tokens")
SOURCE_TYPES = ("procedural", "hf", "files")


SUITES_DIR_ENV = "ADABENCH_SUITES_DIR"
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Prints `message` as a warning the first time this process sees it."""
    if message not in _warned:
        _warned.add(message)
        from adabench import console

        console.warn(message)


def user_suites_dir() -> Path | None:
    """Returns $ADABENCH_SUITES_DIR as a folder, or None when unset; warns (once) when it names
    something that is not a folder, which is then ignored."""
    value = os.environ.get(SUITES_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        what = "a file, not a folder" if path.exists() else "does not exist"
        _warn_once(f"{SUITES_DIR_ENV}={value} {what}: only the shipped suites are used")
        return None
    return path


def suites_dirs() -> list[Path]:
    """Returns the folders searched for suite YAMLs: $ADABENCH_SUITES_DIR, then the shipped ones."""
    dirs = [d for d in (user_suites_dir(),) if d is not None]
    dirs += _shipped_suite_dirs()
    return [d for d in dirs if d.is_dir()]


def _shipped_suite_dirs() -> list[Path]:
    """Returns the folders of the suites shipped with adabench: the checkout's `suites/`, then
    the package's `adabench/suites/`."""
    here = Path(__file__).resolve().parent.parent
    return [here.parent / "suites", here / "suites"]


def _suite_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    shipped = {d.resolve() for d in _shipped_suite_dirs()}
    for d in reversed(suites_dirs()):
        for p in sorted(d.glob("*.yaml")):
            if p.name.startswith("_"):
                continue
            hidden = files.get(p.stem)
            if hidden is not None and d.resolve() not in shipped:
                _warn_once(
                    f"suite {p.stem!r}: {p} (from {SUITES_DIR_ENV}) is used instead of the "
                    f"shipped {hidden}; rename it to keep both"
                )
            files[p.stem] = p
    return files


def list_suites() -> list[str]:
    """Returns the names of all suites (shared `_*.yaml` include files excluded)."""
    return sorted(_suite_files())


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path in seen:
        raise UserError(
            f"include cycle in suite files: {' -> '.join(str(p) for p in seen + (path,))}"
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a suite file must be a mapping, got {type(data).__name__}")
    merged: dict = {}
    for inc in data.pop("include", []) or []:
        merged = _deep_merge(merged, _read_yaml((path.parent / inc).resolve(), seen + (path,)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def get_spec(name: str) -> SuiteSpec:
    """Returns the parsed suite `name`; unknown names raise a did-you-mean UserError."""
    files = _suite_files()
    if name not in files:
        raise did_you_mean(name, files, "suite")
    return parse_spec(files[name])


def parse_spec(path: Path) -> SuiteSpec:
    """Returns the SuiteSpec of one YAML file, validating its required keys and metric names."""
    data = _read_yaml(Path(path))
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"{path}: missing required key(s): {', '.join(missing)}")
    known = {f for f in SuiteSpec.__dataclass_fields__ if f not in ("path", "extra")}
    spec = SuiteSpec(
        **{k: v for k, v in data.items() if k in known},
        path=Path(path),
        extra={k: v for k, v in data.items() if k not in known},
    )
    if "{question}" not in spec.prompt:
        raise UserError(f"{path}: prompt must contain {{question}}")
    return spec


def validate_all() -> list[dict]:
    """Returns one row per suite file: name, ok, data (where its data was checked), problem
    (empty when ok). Checks metrics exist, and an hf suite against its own data (see
    `data_to_check`)."""
    from adabench.data.metrics import METRICS

    rows = []
    for name, path in _suite_files().items():
        where = ""
        try:
            spec = parse_spec(path)
            for metric in {spec.metric, *spec.family_metrics.values()}:
                METRICS.get(metric)
            if spec.source.get("type") not in SOURCE_TYPES:
                raise did_you_mean(str(spec.source.get("type")), SOURCE_TYPES, "source.type")
            where = "generated" if spec.source.get("type") == "procedural" else ""
            if spec.source.get("type") == "files":
                where = "manifests (images: `suites validate NAME`)"
                for split in spec.splits:
                    load_suite(name, split=split)  # every row parses and has an answer
            if spec.source.get("type") == "hf":
                root, where = data_to_check(spec)
                if root is not None and (problems := validate_fixture(spec, root)):
                    raise UserError("; ".join(problems))
            rows.append({"suite": name, "ok": True, "data": where, "problem": ""})
        except UserError as exc:
            rows.append({"suite": name, "ok": False, "data": where, "problem": str(exc)})
    return rows


def data_to_check(spec: SuiteSpec) -> tuple[Path | None, str]:
    """Returns (the folder an hf suite's data is checked in, what to call it): the suite's own
    local copy (source.data_dir, then $ADABENCH_DATA_DIR: where `eval` reads it), else for a
    suite shipped with adabench the repository's test fixtures, else (None, why not checked):
    a user suite read from the Hugging Face cache cannot be checked offline."""
    root = data_root(spec)
    if root is not None:
        return root, str(root)
    fixtures = default_fixture_dir()
    if fixtures is not None and spec.path.resolve().parent in _shipped_suite_dirs():
        return fixtures, "test fixtures"
    return None, "not checked (no local copy: set source.data_dir or $ADABENCH_DATA_DIR)"


def load_suite(
    name: str, split: str = "test", limit: int | None = None, seed: int = 0
) -> list[Sample]:
    """Returns the first `limit` samples of `split` of suite `name` (deterministic)."""
    spec = get_spec(name)
    if split not in spec.splits:
        raise did_you_mean(split, spec.splits, f"split of suite {name!r}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1, got {limit}")
    kind = spec.source.get("type")
    if kind == "procedural":
        samples = _load_procedural(spec, split, limit, seed)
    elif kind == "hf":
        samples = load_hf(spec, split, limit)
    elif kind == "files":
        samples = load_files(spec, split, limit)
    else:
        raise did_you_mean(str(kind), SOURCE_TYPES, f"source type of suite {name!r}")
    check_answers(spec, split, samples)
    return unique_ids(spec, samples)


def _load_procedural(spec: SuiteSpec, split: str, limit: int | None, seed: int) -> list[Sample]:
    from adabench.data import synthetic

    n = int(spec.splits[split]) if limit is None else min(int(limit), int(spec.splits[split]))
    items = synthetic.generate(split, n, seed=seed)
    return [
        Sample(
            it.id,
            synthetic.render(it.scene),
            it.question,
            list(it.answers),
            it.family,
            {**it.meta, "scene": it.scene.key()},
        )
        for it in items
    ]
