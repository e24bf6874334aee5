"""Plugins: methods from outside adabench, loaded from a file, a module or an entry point.

A plugin is a Python file (`--plugin path/to/file.py`), an importable module (`--plugin
mypkg.methods`) or an installed package's entry in the `adabench.methods` entry-point group;
importing it registers its methods with `adabench.api.register_method`
(adabench/models/methods.py:register). Each loaded plugin has a record (name, kind, version,
SHA-256 of its file, the methods it registered) that the sweep writes into meta.json and
`compare` reads (docs/methods.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from adabench.errors import UserError
from adabench.models.methods import (
    BUILT_IN,
    METHODS,
    ORIGINS,
    Method,
    register,
    registering_from,
)

ENTRY_POINT_GROUP = "adabench.methods"
LOADED: dict[str, dict] = {}
"""Key (resolved file path, "module:NAME" or "entry point:DIST:NAME") → the plugin's record,
in load order; a plugin is imported once per process."""
ENTRY_POINTS_LOADED: list[bool] = []
"""Holds True once the entry-point group has been read in this process."""


def is_file_spec(spec: str) -> bool:
    """Whether `--plugin spec` names a file (ends in .py or contains a path separator)."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def file_sha256(path: Path) -> str:
    """Returns the SHA-256 hex digest of the file at `path`."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_plugins(specs: list[str] | None) -> list[dict]:
    """Loads the entry-point plugins (once per process) and each of `specs` (files or module
    names); returns the records of every plugin loaded so far, in load order. A plugin that
    cannot be imported, registers no method or shadows another's method is a UserError."""
    load_entry_points()
    for spec in specs or []:
        load_plugin(spec)
    return plugin_records()


def plugin_records() -> list[dict]:
    """Returns a copy of the record of every plugin loaded in this process, in load order."""
    return [dict(r, methods=list(r["methods"])) for r in LOADED.values()]


def load_plugin(spec: str) -> dict:
    """Imports the plugin `spec` (a .py file or a module name) once; returns its record."""
    if is_file_spec(spec):
        return _load_file(spec)
    key = f"module:{spec}"
    if key in LOADED:
        return LOADED[key]
    label = f"module {spec}"
    module = _imported(label, lambda: importlib.import_module(spec), missing_ok=False)
    path = Path(getattr(module, "__file__", "") or "")
    record = {**_record(label, spec, "module", _version(spec, module), path), "module": spec}
    LOADED[key] = record
    return record


def _load_file(spec: str) -> dict:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--plugin {spec}: no such file (give a .py file or a module name)")
    key = str(path)
    if key in LOADED:
        return LOADED[key]
    sha = file_sha256(path)
    module_name = f"adabench_plugin_{path.stem.replace('-', '_')}_{sha[:8]}"
    label = f"file {spec}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserError(f"plugin {label}: not a Python file adabench can import")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here

    def run() -> object:
        loader_spec.loader.exec_module(module)
        return module

    try:
        _imported(label, run)
    except UserError:
        sys.modules.pop(module_name, None)
        raise
    record = {**_record(label, path.stem, "file", "", path, sha), "module": module_name}
    LOADED[key] = record
    return record


def load_entry_points() -> list[dict]:
    """Loads every entry of the `adabench.methods` group once per process (each names a module
    that registers methods, or a Method subclass); returns their records."""
    if ENTRY_POINTS_LOADED:
        return [r for r in LOADED.values() if r["kind"] == "entry point"]
    ENTRY_POINTS_LOADED.append(True)
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else ep.name
        key = f"entry point:{dist_name}:{ep.name}"
        if key in LOADED:
            continue
        label = f"entry point {dist_name}:{ep.name}"

        def run(ep=ep) -> object:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, Method) and obj.NAME not in ORIGINS:
                register(obj)
            return obj

        obj = _imported(label, run)
        module = sys.modules.get(ep.module)
        path = Path(getattr(module, "__file__", "") or "")
        version = dist.version if dist is not None else _version(ep.module, obj)
        LOADED[key] = {**_record(label, dist_name, "entry point", version, path),
                       "module": ep.module}  # fmt: skip
        out.append(LOADED[key])
    return out


def _imported(label: str, run, missing_ok: bool = True) -> object:
    """Returns `run()` (an import) with the plugin's methods recorded under `label`; any failure
    is a UserError naming the plugin (the original exception chained for ADABENCH_DEBUG=1)."""
    before = set(ORIGINS)
    try:
        with registering_from(label):
            result = run()
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        if not missing_ok and exc.name and label.endswith(exc.name):
            raise UserError(
                f"plugin {label}: no module named {exc.name!r} (give a .py file or an "
                "importable module; is the package installed?)"
            ) from exc
        raise UserError(f"plugin {label} failed to import: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        where = _plugin_line(exc)
        raise UserError(
            f"plugin {label} failed to import{where}: {type(exc).__name__}: {exc}"
        ) from exc
    if not (set(ORIGINS) - before) and not any(o == label for o in ORIGINS.values()):
        raise UserError(
            f"plugin {label} registers no method: decorate a Method subclass with "
            "@adabench.api.register_method"
        )
    return result


def _plugin_line(exc: BaseException) -> str:
    """Returns " (FILE:LINE)" of the innermost traceback frame outside adabench and importlib."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "importlib" not in name and "/adabench/" not in name.replace("\\", "/"):
            where = f" ({Path(name).name}:{tb.tb_lineno})"
        tb = tb.tb_next
    return where


def _version(module_name: str, module: object) -> str:
    """Returns the installed distribution version of `module_name`'s top-level package, else
    its `__version__`, else ""."""
    top = module_name.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "") or "")


def _record(label: str, name: str, kind: str, version: str, path: Path, sha: str = "") -> dict:
    """Returns a plugin's record: name, kind (file | module | entry point), version, path,
    sha256 of its file ("" when it has none) and the methods it registered."""
    if not sha and path.is_file():
        sha = file_sha256(path)
    return {
        "name": name,
        "kind": kind,
        "label": label,
        "version": version,
        "path": str(path) if path.is_file() else "",
        "sha256": sha,
        "methods": sorted(n for n, o in ORIGINS.items() if o == label),
    }


def unload_plugins() -> None:
    """Forgets every plugin: their methods leave the registry, their records and modules go,
    and the entry-point group is read again on the next `load_plugins` (tests use it)."""
    for name, origin in list(ORIGINS.items()):
        if origin != BUILT_IN:
            METHODS.unregister(name)
            del ORIGINS[name]
    for record in LOADED.values():
        top = record["module"]
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    LOADED.clear()
    ENTRY_POINTS_LOADED.clear()
