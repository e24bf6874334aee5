"""The embedded tiny LLaVA: its word-level tokenizer, processor and model config for `shapes`.

A real `LlavaForConditionalGeneration` (CLIP vision tower → 2-layer GELU projector → Llama
decoder) small enough to train on 2 CPU cores: 48×48 images with 16-pixel patches (one patch
per grid cell, 9 visual tokens), CLIP 3 layers × 96, Llama 12 layers × 128 with 4 heads.
"""

from __future__ import annotations

from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from adabench.data import synthetic

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
PROMPT = "USER: <image>\n{question} ASSISTANT:"
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% else %}{{ item['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def vocabulary() -> list[str]:
    """Returns the word-level vocabulary (special tokens first), fixed and deterministic."""
    words = [
        "USER:",
        "ASSISTANT:",
        "?",
        ".",
        "what",
        "color",
        "is",
        "the",
        "how",
        "many",
        "are",
        "there",
        "objects",
        "a",
        "in",
        "image",
        "left",
        "right",
        "of",
        "above",
        "below",
        "yes",
        "no",
        "describe",
        "where",
        "on",
        "side",
        "top",
        "bottom",
        *synthetic.CELL_WORDS,
        *synthetic.LETTERS,
        *synthetic.NUMBER_WORDS,
        *synthetic.COLORS,
        *synthetic.SHAPES,
        *synthetic.PLURAL.values(),
    ]
    seen: list[str] = []
    for w in SPECIAL + words:
        if w not in seen:
            seen.append(w)
    return seen


def build_tokenizer(
    vocab: dict[str, int] | None = None,
    image_token: str = "<image>",
    specials: tuple[str, ...] = (),
) -> PreTrainedTokenizerFast:
    """Returns a word-level fast tokenizer (whitespace split) with the image token (LLaVA's
    `<image>` unless told) and `specials` as special tokens over `vocab` (word → id; default:
    the shapes vocabulary, special tokens first)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = vocab or {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=[image_token, *specials],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor() -> LlavaProcessor:
    """Returns the LlavaProcessor: PIL CLIP image processor at 48×48 + the word-level tokenizer."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": synthetic.IMAGE_SIZE},
        crop_size={"height": synthetic.IMAGE_SIZE, "width": synthetic.IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        patch_size=16,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )


def build_config(
    vocab_size: int, image_token_id: int, pad_id: int, bos_id: int, eos_id: int
) -> LlavaConfig:
    """Returns the tiny LlavaConfig (Llama decoder 12 × 128, 4 heads; CLIP 3 × 96)."""
    vision = CLIPVisionConfig(
        hidden_size=96,
        intermediate_size=384,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=synthetic.IMAGE_SIZE,
        patch_size=16,
        projection_dim=96,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=12,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=9,
        pad_token_id=pad_id,
    )
