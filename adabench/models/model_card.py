"""Model cards for the embedded checkpoints: command, seed, time, parameters, accuracy tables."""

from __future__ import annotations

import json
from pathlib import Path


def family_table(rows: list[dict]) -> dict[str, float]:
    """Returns accuracy per question family and overall from eval sample rows."""
    fams: dict[str, list[float]] = {}
    for r in rows:
        fams.setdefault(r["family"], []).append(r["score"])
    table = {f: sum(v) / len(v) for f, v in sorted(fams.items())}
    table["overall"] = sum(r["score"] for r in rows) / len(rows)
    return table


def write_card(
    folder: Path,
    title: str,
    commands: list[str],
    tables: dict[str, dict[str, float]],
    notes: str = "",
) -> Path:
    """Writes `folder/README.md`; `tables` maps a row label (e.g. "budget 0.75") to family accuracies."""
    folder = Path(folder)
    training = (
        json.loads((folder / "training.json").read_text())
        if (folder / "training.json").exists()
        else {}
    )
    size_mb = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6
    families = sorted({f for t in tables.values() for f in t if f != "overall"}) + ["overall"]
    lines = (
        [f"# {title}", "", notes, "", "## Reproduce", "", "```"]
        + commands
        + [
            "```",
            "",
            "## Facts",
            "",
            f"- parameters: {training.get('parameters', 'see config.json')}",
            f"- weights on disk: {size_mb:.2f} MB (fp16 safetensors)",
            f"- training time: {training.get('train_minutes', '?')} min, {training.get('steps', '?')} steps, "
            f"seed {training.get('config', {}).get('seed', '?')}, torch threads {training.get('threads', '?')}",
            "",
            "## Test accuracy (shapes test split, greedy exact match through `adabench eval`)",
            "",
            "| | " + " | ".join(families) + " |",
            "|---" * (len(families) + 1) + "|",
        ]
    )
    for label, t in tables.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{t.get(f, float('nan')):.3f}" for f in families) + " |"
        )
    lines.append("")
    (folder / "README.md").write_text("\n".join(lines))
    return folder / "README.md"
