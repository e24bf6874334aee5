"""Sweep configuration. Precedence: CLI flag > --config YAML > defaults (the embedded demo)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from adabench.errors import UserError, check_range

DEMO_MODELS = ["tiny", "tiny-adallava-l", "tiny-adallava-h"]
DEMO_METHODS = ["full", "layer-drop", "early-exit", "adallava-l", "adallava-h"]
ORDERS = ("interleaved", "sequential")
SCENARIOS = ("closed", "server")
CONTENTION_KINDS = ("compute", "memory", "mixed", "sm")  # adabench.contention.KINDS, without torch
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
MAX_RANGE_VALUES = 1000
SHIPPED_SWEEPS_DIR = Path(__file__).resolve().parent / "configs" / "sweeps"
"""Sweep YAMLs installed with the package: `--config ci` is SHIPPED_SWEEPS_DIR / "ci.yaml"."""


def shipped_sweeps() -> list[str]:
    """Returns the names of the shipped sweep configs (e.g. "ci", "demo", "paper")."""
    return sorted(p.stem for p in SHIPPED_SWEEPS_DIR.glob("*.yaml"))


def resolve_config(value: str | Path) -> Path:
    """Returns the sweep YAML `value` names: an existing file, else the shipped config of that
    name (`ci` or `ci.yaml`). Raises a UserError listing the shipped names (with a did-you-mean)
    for anything else, and for a folder."""
    path = Path(value)
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(
            f"--config {value}: is a folder; give a sweep YAML file or a shipped name "
            f"({', '.join(shipped_sweeps())})"
        )
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem in shipped_sweeps():
        return SHIPPED_SWEEPS_DIR / f"{stem}.yaml"
    if path.parent == Path(".") and path.suffix not in (".yaml", ".yml"):
        from adabench.errors import did_you_mean

        err = did_you_mean(str(value), shipped_sweeps(), "sweep config")
        raise UserError(f"{err} Or give the path of a YAML file (no file {value!r} here).")
    raise UserError(
        f"config file not found: {value} (shipped configs, usable by name: "
        f"{', '.join(shipped_sweeps())})"
    )


def check_cuda_graphs(enabled: bool, device: str) -> None:
    """Raises UserError when `--cuda-graphs` is asked for where torch sees no CUDA device, or
    with `device` cpu; returns None otherwise (`device`: auto | cpu | cuda[:i])."""
    if not enabled:
        return
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return
    raise UserError(
        f"--cuda-graphs needs a CUDA device (device {device!r}: none here); drop the flag"
    )


def check_run_settings(
    repeats: int, warmup: int, limit: int | None, max_new_tokens: int | None
) -> None:
    """Raises UserError for a setting a sweep and a single cell share that is out of range."""
    if repeats < 1:
        raise UserError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise UserError(f"warmup must be >= 0, got {warmup}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1, got {limit}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UserError(f"max-new-tokens must be >= 1, got {max_new_tokens}")


@dataclass
class SweepConfig:
    """Everything that defines a sweep's grid and how each cell is measured."""

    models: list[str] = field(
        default_factory=lambda: list(DEMO_MODELS),
        metadata={"help": "model aliases, folders or hub ids"},
    )
    methods: list[str] = field(
        default_factory=lambda: list(DEMO_METHODS),
        metadata={"help": "methods (a+b for combinations)"},
    )
    suites: list[str] = field(default_factory=lambda: ["shapes"], metadata={"help": "suite names"})
    budgets: list[float] = field(
        default_factory=lambda: [0.5, 0.75, 1.0], metadata={"help": "budgets in (0, 1]"}
    )
    contention: list[float] = field(
        default_factory=lambda: [0.0, 0.5], metadata={"help": "stress levels in [0, 1]"}
    )
    contention_kind: str = field(
        default="compute", metadata={"help": "compute | memory | mixed | sm"}
    )
    split: str = field(default="test", metadata={"help": "suite split"})
    limit: int | None = field(default=100, metadata={"help": "samples per suite (None = all)"})
    repeats: int = field(default=1, metadata={"help": "timed runs per sample"})
    warmup: int = field(default=2, metadata={"help": "untimed generations at cell start"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "default: the suite's"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda[:i]"})
    cuda_graphs: bool = field(
        default=False,
        metadata={"help": "decode steps as one CUDA graph per plan (CUDA only; off by default)"},
    )
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | float16 | bfloat16"})
    seed: int = field(default=0, metadata={"help": "seed"})
    method_args: dict = field(
        default_factory=dict, metadata={"help": "method arguments {key: value}"}
    )
    slo_ms: list[float] = field(
        default_factory=list, metadata={"help": "latency targets (SLO mode)"}
    )
    contention_schedule: str | None = field(
        default=None, metadata={"help": "SLO mode: changing load, e.g. 0:30s,1.0:30s"}
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads for the measured model (None = torch's default)"},
    )
    scenario: str = field(
        default="closed",
        metadata={
            "help": "closed: the next request starts when the last ends | server: requests "
            "arrive on their own clock (Poisson at --rates, or --arrivals) and queue"
        },
    )
    rates: list[float] = field(
        default_factory=list, metadata={"help": "server scenario: offered rates, requests/s"}
    )
    duration_s: float = field(
        default=30.0, metadata={"help": "server scenario: arrival window per rate, seconds"}
    )
    arrivals: str | None = field(
        default=None,
        metadata={"help": "server scenario: CSV trace of arrival times (t_s, seconds) to replay"},
    )
    no_weights: bool = field(
        default=False, metadata={"help": "random weights from the config (latency only)"}
    )
    skip_unreachable: bool = field(
        default=False,
        metadata={"help": "drop cells whose budget the method cannot reach (else: refused)"},
    )
    skip_bad_samples: bool = field(
        default=False,
        metadata={
            "help": "leave out samples whose image cannot be read (listed in meta.json); "
            "without it such a suite is refused before the first cell"
        },
    )
    order: str = field(
        default="interleaved",
        metadata={
            "help": "interleaved: sample by sample, every arm of a group once per pass in a "
            "seeded random order (paired in time) | sequential: one cell after another"
        },
    )
    aa: bool = field(
        default=True,
        metadata={"help": "measure a second, hidden `full` arm per group: the A/A noise floor"},
    )
    target_ci: float | None = field(
        default=None,
        metadata={
            "help": "add rounds until every arm's latency-ratio CI half-width <= this (e.g. 0.02)"
        },
    )
    max_rounds: int = field(
        default=5, metadata={"help": "rounds (passes over the samples) at most with target_ci"}
    )
    max_time_s: float | None = field(
        default=None, metadata={"help": "seconds per group at most for extra rounds (target_ci)"}
    )
    plugins: list[str] = field(
        default_factory=list,
        metadata={"help": "plugin files (.py) or modules whose methods the sweep may use"},
    )
    chunk: int = field(
        default=10,
        metadata={"help": "samples per atomically written chunk (an interrupt loses at most one)"},
    )

    def __post_init__(self) -> None:
        from adabench.errors import did_you_mean

        for name in ("models", "methods", "suites", "budgets", "contention"):
            if not getattr(self, name):
                raise UserError(f"{name} must not be empty")
        if self.contention_kind not in CONTENTION_KINDS:
            raise did_you_mean(str(self.contention_kind), CONTENTION_KINDS, "contention kind")
        if self.dtype not in DTYPES:
            raise did_you_mean(str(self.dtype), DTYPES, "dtype")
        if not DEVICE.fullmatch(self.device):
            raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        self.budgets = [
            check_range(float(b), 0.0, 1.0, "budget", low_open=True) for b in self.budgets
        ]
        self.contention = [
            check_range(float(c), 0.0, 1.0, "contention level") for c in self.contention
        ]
        for name in ("models", "methods", "suites", "budgets", "contention"):
            setattr(self, name, collapse_duplicates(name, getattr(self, name)))
        check_run_settings(self.repeats, self.warmup, self.limit, self.max_new_tokens)
        check_cuda_graphs(self.cuda_graphs, self.device)
        if self.threads is not None:
            check_threads(self.threads)
        if self.contention_schedule and not self.slo_ms:
            raise UserError(
                "--contention-schedule belongs to SLO mode (the controller follows the changing "
                "load): give --slo-ms too, or use --contention LEVELS for fixed levels"
            )
        if self.order not in ORDERS:
            from adabench.errors import did_you_mean

            raise did_you_mean(str(self.order), ORDERS, "order")
        if self.target_ci is not None:
            check_range(float(self.target_ci), 0.0, 1.0, "target-ci", low_open=True)
        if self.max_rounds < 1:
            raise UserError(f"max-rounds must be >= 1, got {self.max_rounds}")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise UserError(f"max-time must be > 0 seconds, got {self.max_time_s}")
        if self.chunk < 1:
            raise UserError(f"chunk must be >= 1, got {self.chunk}")
        for s in self.slo_ms:
            if float(s) <= 0:
                raise UserError(f"slo-ms must be > 0, got {s}")
        self.plugins = normalize_plugins(self.plugins)
        self._validate_scenario()

    def _validate_scenario(self) -> None:
        """Checks the server-scenario settings (and that they are not given without it)."""
        if self.scenario not in SCENARIOS:
            from adabench.errors import did_you_mean

            raise did_you_mean(str(self.scenario), SCENARIOS, "scenario")
        if self.scenario != "server":
            if self.rates or self.arrivals:
                raise UserError("--rates and --arrivals belong to --scenario server")
            return
        if len(self.slo_ms) != 1:
            raise UserError(
                "--scenario server needs one --slo-ms target (attainment and goodput are "
                f"measured against it), got {len(self.slo_ms) or 'none'}"
            )
        if self.contention_schedule:
            raise UserError("--scenario server takes --contention levels, not a schedule")
        if self.arrivals:
            if self.rates:
                raise UserError("give --rates (Poisson arrivals) or --arrivals TRACE, not both")
            return  # the trace itself is read and checked with the grid (sweep/resume.py)
        if not self.rates:
            raise UserError("--scenario server needs --rates (requests/s) or --arrivals TRACE")
        for rate in self.rates:
            if not float(rate) > 0:
                raise UserError(f"rates must be > 0 requests/s, got {rate:g}")
        if not float(self.duration_s) > 0:
            raise UserError(f"duration must be > 0 seconds, got {self.duration_s:g}")
        self.rates = collapse_duplicates("rates", [float(r) for r in self.rates])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_layers(cls, yaml_path: Path | None, overrides: dict) -> SweepConfig:
        """Returns the config: defaults, then the YAML file, then the CLI `overrides` (non-None)."""
        data = read_yaml(yaml_path) if yaml_path is not None else {}
        data = checked_values(data, str(yaml_path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def normalize_plugins(specs: list[str] | None) -> list[str]:
    """Returns the plugin specs with file paths (ending in .py or holding a separator) made
    absolute, so a stored config resumes from any folder; module names stay as given."""
    out = []
    for spec in specs or []:
        is_file = spec.endswith(".py") or "/" in spec or "\\" in spec
        spec = str(Path(spec).expanduser().resolve()) if is_file else spec
        if spec not in out:
            out.append(spec)
    return out


THREADS_PER_CORE_MAX = 4
"""Torch threads per logical core above which `threads` is refused (oversubscription only)."""


def check_threads(threads: int) -> int:
    """Returns `threads` when it is in [1, 4 × the machine's logical cores]; warns above the
    core count (oversubscribed threads measure contention from the model itself). UserError
    naming the allowed range otherwise."""
    cores = os.cpu_count() or 1
    high = THREADS_PER_CORE_MAX * cores
    if not 1 <= threads <= high:
        raise UserError(f"threads must be in [1, {high}] (4 x {cores} cores here), got {threads}")
    if threads > cores:
        from adabench import console

        console.warn(
            f"threads {threads} > {cores} logical cores: the model's threads will contend with "
            "each other, and the latency measures that"
        )
    return threads


def collapse_duplicates(name: str, values: list) -> list:
    """Returns `values` without repeats (first occurrence kept; numbers compared at 1e-9), with a
    note on stderr naming what was dropped."""
    kept, dropped = [], []
    for v in values:
        same = [k for k in kept if (abs(k - v) < 1e-9 if isinstance(v, float) else k == v)]
        (dropped if same else kept).append(v)
    if dropped:
        from adabench import console

        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in dropped)
        console.log(
            f"note: {name}: repeated value(s) {shown} collapsed; the grid uses "
            + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in kept)
        )
    return kept


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys
            if key in seen:
                raise _DuplicateKey(
                    f"key {key!r} given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


LIST_FIELDS = {"models": "names", "methods": "names", "suites": "names", "budgets": "numbers",
               "contention": "numbers", "slo_ms": "numbers", "rates": "numbers",
               "plugins": "names"}  # fmt: skip
"""List fields and what they hold; a YAML scalar there is read like the CLI flag (`a,b`)."""


def read_yaml(path: Path) -> dict:
    """Returns the mapping in the YAML file `path` (a file, or a shipped name: resolve_config;
    safe loader, a key given twice refused); every problem is a UserError."""
    path = resolve_config(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except _DuplicateKey as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: a sweep config must be a mapping of keys (models:, budgets:, ...), "
            f"got a {type(data).__name__}"
        )
    return data


def checked_values(data: dict, source: str) -> dict:
    """Returns `data` with every key known and every value of its field's type; scalars given
    for list fields become lists ("tiny" → ["tiny"], 0.5 → [0.5]). Raises a UserError naming
    the key, the value and what is allowed."""
    from adabench.errors import did_you_mean

    known = {f.name: f for f in fields(SweepConfig)}
    out: dict = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise UserError(f"{source}: config keys must be names, got {key!r}")
        if key not in known:
            raise did_you_mean(key, known, f"config key in {source}:")
        out[key] = _checked(key, value, str(known[key].type), source)
    return out


def _checked(key: str, value, type_text: str, source: str):
    """Returns `value` checked against the field type `type_text` (the dataclass annotation)."""

    def bad(allowed: str) -> UserError:
        return UserError(f"{source}: {key} must be {allowed}, got {value!r}")

    if value is None:
        if "None" in type_text:
            return None
        if key in ("slo_ms", "rates", "plugins"):
            return []
        raise bad(f"a list of {LIST_FIELDS[key]}" if key in LIST_FIELDS else _ALLOWED[type_text])
    if key in LIST_FIELDS:
        kind = LIST_FIELDS[key]
        if isinstance(value, str):
            parsed = (
                parse_names(value) if kind == "names" else parse_floats(value, f"{source}: {key}")
            )
            return parsed
        if kind == "numbers" and _is_number(value):
            return [float(value)]
        if not isinstance(value, list):
            raise bad(f"a list of {kind}")
        if kind == "names" and not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of names")
        if kind == "numbers" and not all(_is_number(v) for v in value):
            raise bad("a list of numbers")
        return [float(v) for v in value] if kind == "numbers" else [v.strip() for v in value]
    if type_text == "dict":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad("a mapping {name: value}")
        if not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
            raise bad("a mapping of names to plain values (numbers or text)")
        return dict(value)
    checks = {
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": _is_number,
    }
    base = type_text.replace(" | None", "")
    if base in checks and not checks[base](value):
        raise bad(_ALLOWED[type_text])
    return float(value) if base == "float" else value


_ALLOWED = {
    "bool": "true or false",
    "str": "text",
    "str | None": "text or null",
    "int": "a whole number",
    "int | None": "a whole number or null",
    "float": "a number",
    "float | None": "a number or null",
}


def _is_number(value) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """Returns floats from "0.5,0.75" or a range "0.5:1.0:0.05" (inclusive); None stays None."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise UserError(f"{what}: step must be > 0 in {text!r}")
            n = int(round((stop - start) / step))
            if n < 0:
                raise UserError(f"{what}: the range {text!r} is empty (start > stop)")
            if n >= MAX_RANGE_VALUES:
                raise UserError(f"{what}: the range {text!r} has {n + 1} values; at most "
                                f"{MAX_RANGE_VALUES} (use a larger step)")  # fmt: skip
            return [round(start + i * step, 10) for i in range(n + 1)]
        values = [float(x) for x in text.split(",") if x.strip()]
    except (ValueError, OverflowError):
        raise UserError(
            f"{what} must be numbers like 0.5,1.0 or a range 0.5:1.0:0.05, got {text!r}"
        ) from None
    if not values:
        raise UserError(f"{what} is empty; give numbers like 0.5,1.0")
    return values


def parse_names(text: str | None) -> list[str] | None:
    """Returns names from "a,b"; None stays None."""
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]
