"""Which prompt a sample runs with: the suite's LLaVA-1.5 prompt, or the model's chat template.

Suites write LLaVA-1.5 prompts (`USER: <image>\\n{question} ASSISTANT:`). They fit a LLaVA-1.5
model (the `llava` wrapper). For any other wrapper (LLaVA-NeXT, LLaVA-OneVision, Idefics3,
Qwen-VL) the prompt is built as lmms-eval builds it per model class: the suite's rendered text
with the LLaVA-1.5 scaffold (`USER:`, `ASSISTANT:`, the `<image>` placeholder) taken out becomes
the user turn, after one image, through the processor's own `apply_chat_template`. A processor
without a chat template keeps the suite's prompt when it holds the wrapper's image placeholder.
The source is recorded per sample (`prompt_source`: "suite" | "chat-template").
"""

from __future__ import annotations

import re

from adabench.errors import UserError

SCAFFOLD = re.compile(r"USER:|ASSISTANT:|<image>")
SOURCES = ("suite", "chat-template")


def user_text(rendered: str) -> str:
    """Returns the suite's rendered prompt without the LLaVA-1.5 scaffold (the user's words)."""
    return " ".join(SCAFFOLD.sub(" ", rendered).split())


def build_prompt(processor, wrapper, rendered: str, where: str) -> tuple[str, str]:
    """Returns (prompt, source) for a suite prompt `rendered` on a model of `wrapper`; a prompt
    that cannot fit (no chat template, no image placeholder) is a one-line UserError."""
    if wrapper.name == "llava":
        return rendered, "suite"
    if getattr(processor, "chat_template", None):
        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": user_text(rendered)}],
            }
        ]
        return processor.apply_chat_template(messages, add_generation_prompt=True), SOURCES[1]
    if wrapper.image_token in rendered:
        return rendered, "suite"
    raise UserError(
        f"{where}: the suite's prompt has no {wrapper.image_token} for {wrapper.label} and the "
        "processor has no chat template to build one"
    )
