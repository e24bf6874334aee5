"""What a Python needs before `make test-gpu` can mean anything: every module adabench imports
on the GPU path, and the version floors (torch >= 2.11, transformers >= 5.17).

`python -m adabench.measure.preflight` prints one line naming every missing module or too-old
package (nvidia-ml-py above all: without it GPU telemetry is NaN) and exits 1; silent and 0 when
all is there. It imports nothing heavy (find_spec and package metadata only).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys

REQUIRED = {
    "torch": "torch",
    "transformers": "transformers",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib",
    "rich": "rich",
    "typer": "typer",
    "yaml": "PyYAML",
    "PIL": "pillow",
    "pynvml": "nvidia-ml-py",
    "pytest": "pytest",
}
"""Import name → distribution to install."""
FLOORS = {"torch": (2, 11), "transformers": (5, 17)}
"""Distribution → the lowest (major, minor) adabench supports."""


def _version(dist: str) -> tuple[int, int] | None:
    try:
        text = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = re.findall(r"\d+", text)[:2]
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) if parts else None


def problems(required: dict[str, str] = REQUIRED, floors: dict = FLOORS) -> list[str]:
    """Returns one entry per missing module ("pynvml (pip install nvidia-ml-py)") or package
    below its floor ("torch 2.9 < 2.11"); empty when everything is there."""
    out = [f"{mod} (pip install {dist})" for mod, dist in required.items()
           if importlib.util.find_spec(mod) is None]  # fmt: skip
    for dist, floor in floors.items():
        have = _version(dist)
        if have is not None and have < floor:
            out.append(f"{dist} {have[0]}.{have[1]} < {floor[0]}.{floor[1]}")
    return out


def main() -> int:
    """Prints the problems on one line (stderr) and returns 1, or returns 0 when there are none."""
    found = problems()
    if found:
        print(f"preflight: {sys.executable} is missing: {'; '.join(found)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
