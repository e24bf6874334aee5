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


def suite_prompt_note(suite: str) -> str:
    """Returns the one line `suites show` prints beside a suite's prompt: who runs it as is."""
    return (
        "LLaVA-1.5 models (wrapper llava) run this prompt; other wrappers build it from the "
        f"question with their chat template (adabench suites show {suite} --model M)"
    )


def synthetic_processor_text(wrapper) -> str:
    """Returns what `suites show` says of a shipped config's synthetic processor: its tokenizer
    and whose chat template it carries (the checkpoints' own, `Wrapper.chat_template`)."""
    template = (
        f"the checkpoint's chat template ({wrapper.chat_template_of})"
        if wrapper.chat_template
        else "the suite's LLaVA-1.5 prompt"
    )
    return f"synthetic (shipped config, as --no-weights runs it: word-level tokenizer, {template})"


def model_prompt(model: str, spec, sample) -> dict:
    """Returns what `model` runs for `sample` of the suite `spec`, from its processor alone (no
    weights are built): its wrapper, where the processor comes from, the prompt and its
    `prompt_source`, and the prompt's tokens after the processor expands the image placeholder
    (`prompt_tokens` = `text_tokens` + `image_tokens`, counts). `model` is a shipped config
    (processor: synthetic, as `--no-weights` runs it), an embedded alias or a local folder; an
    unknown name is a did-you-mean UserError."""
    from adabench.data.hf_suites import prepare_image
    from adabench.data.images import read_image
    from adabench.models import catalog
    from adabench.models.no_weights import config_and_processor
    from adabench.models.wrappers import wrapper_of

    shipped = catalog.shipped_config_dict(model) is not None
    if not shipped and catalog.local_folder(model) is None:
        catalog.resolve(model)  # an unknown name raises did-you-mean
        raise UserError(
            f"--model {model!r}: suites show reads the processor offline from a shipped config "
            f"({', '.join(catalog.shipped_names())}), an embedded alias or a local folder"
        )
    _, config, processor = config_and_processor(model)
    wrapper = wrapper_of(config)
    prompt, source = build_prompt(
        processor, wrapper, spec.render_prompt(sample), f"sample {sample.id}"
    )
    image = prepare_image(spec, read_image(sample), processor)
    ids = processor(images=image, text=prompt, return_tensors="pt")["input_ids"][0]
    image_tokens = int((ids == config.image_token_id).sum())
    return {
        "model": model,
        "wrapper": wrapper.name,
        "wrapper_label": wrapper.label,
        "processor": (
            synthetic_processor_text(wrapper)
            if shipped
            else f"the model's own ({catalog.local_folder(model)})"
        ),
        "model_prompt": prompt,
        "prompt_source": source,
        "prompt_tokens": int(ids.shape[0]),
        "text_tokens": int(ids.shape[0]) - image_tokens,
        "image_tokens": image_tokens,
    }
