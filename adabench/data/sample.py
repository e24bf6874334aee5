"""The two data types every suite source produces: `SuiteSpec` (a parsed suite YAML) and
`Sample` (one benchmark item). A leaf module, so the suite loaders can share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    """One benchmark item: an image, a question and its accepted answers."""

    id: str
    image: Any  # PIL.Image.Image
    question: str
    answers: list[str]
    family: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class SuiteSpec:
    """A parsed suite YAML."""

    name: str
    source: dict
    splits: dict
    prompt: str
    metric: str
    max_new_tokens: int
    description: str = ""
    answer_type: str = "word"
    fields: dict = field(default_factory=dict)
    family_metrics: dict = field(default_factory=dict)
    families: list = field(default_factory=list)
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    def metric_for(self, family: str) -> str:
        """Returns the metric name that scores a sample of `family`."""
        return self.family_metrics.get(family, self.metric)

    def render_prompt(self, sample: Sample) -> str:
        """Returns the model prompt for `sample` (the template's {question} filled in)."""
        return self.prompt.format(question=sample.question, **sample.meta.get("prompt_fields", {}))
