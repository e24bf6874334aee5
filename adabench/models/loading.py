"""Load Llava checkpoints (HF format) by alias, local path or hub id; no implicit remote code.

Aliases: `tiny`, `tiny-adallava-l`, `tiny-adallava-h` (embedded under adabench/assets/) and
`llava-1.5-7b` / `llava-1.5-13b` (llava-hf hub ids, loaded through the user's HF cache).
Config-only shipped names (llava-v1.6-mistral-7b, llava-qwen2-7b) have no checkpoint: refused
here, they run with --no-weights. Before anything is loaded the config is checked
(`catalog.check_supported`): a VLM class other than Llava, a decoder family adabench does not
run, or a config field it does not implement is a one-line UserError. A folder with
`adallava_config.json` loads as an AdaLLaVA model (base Llava + latency encoder and
scheduler). Image processors use the PIL backend (the torchvision one changes pixel values).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adabench.errors import UserError, did_you_mean
from adabench.models.catalog import (
    check_supported,
    config_only,
    read_config,
    resolve,
    shipped_config,
    weights_in_cache,
)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready to run: the HF Llava model, its processor, and the AdaLLaVA head if any."""

    name: str
    path: str
    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    adallava: object | None = None  # adabench.models.adallava.model.AdaLlavaHead
    weights: str = "unknown"  # catalog.weights_label; "random" for --no-weights builds
    random_heads: dict[str, object] = field(default_factory=dict, repr=False)
    """--no-weights: the random AdaLLaVA head built per variant ("L", "H"), reused across cells."""
    flops_memo: dict[tuple, dict] = field(default_factory=dict, repr=False)
    """Analytic FLOPs per (prompt length, new tokens, plan, full length): see sweep/rows.py."""

    @property
    def variant(self) -> str | None:
        """Returns "L", "H" or None (plain Llava)."""
        return None if self.adallava is None else self.adallava.config.variant

    @property
    def config(self):
        """The model's LlavaConfig."""
        return self.model.config


def resolve_device(device: str) -> torch.device:
    """Returns the concrete torch device for "auto" | "cpu" | "cuda[:i]": on CUDA always with
    an index (`cuda:i`, see adabench.measure.device.resolve), made the current CUDA device so
    that code creating tensors on bare "cuda" lands on the same GPU. Asking for CUDA without
    one, or for an index that is not visible, is a UserError."""
    from adabench.measure import device as devices

    if device != "cpu":
        devices.prefer_eager_module_loading()  # before the first CUDA call of this process
    chosen = devices.resolve(device)
    if chosen.index is not None:
        torch.cuda.set_device(chosen.index)
    return torch.device(chosen.name)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Returns the dtype: "auto" is float32 on CPU and float16 on GPU."""
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if dtype not in DTYPES:
        raise did_you_mean(dtype, list(DTYPES) + ["auto"], "dtype")
    return DTYPES[dtype]


def load_processor(path: str, trust_remote_code: bool = False):
    """Returns the AutoProcessor of `path`, forcing the PIL image-processor backend; a wrapper
    whose processor class has a video half (LLaVA-OneVision, Qwen-VL) loads that class without
    it (`wrappers.base.image_only`: the video processors need torchvision)."""
    from transformers import AutoProcessor

    video = _image_only_class(path)
    if video is not None:
        return video.from_pretrained(path, backend="pil")

    try:
        return AutoProcessor.from_pretrained(
            path, backend="pil", trust_remote_code=trust_remote_code
        )
    except TypeError:  # older transformers: the slow processor is the PIL one
        return AutoProcessor.from_pretrained(
            path, use_fast=False, trust_remote_code=trust_remote_code
        )


def load_model(
    name: str,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Returns the loaded model `name` on `device` in `dtype` (eval mode)."""
    from transformers.utils import logging as hf_logging

    from adabench.models.wrappers import model_class, wrapper_of

    hf_logging.disable_progress_bar()  # our progress goes to stderr through rich; theirs is noise here
    _refuse_config_only(name)
    path = resolve(name)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    local = Path(path).is_dir()
    if local:
        check_model_folder(Path(path))
    else:
        _announce_download(path)
    config = _config_without_network(name, path)
    if config is None and not local:
        config = _hub_config(name, path)  # config.json only, before the weights download
    if config is not None:
        check_memory(config, dev, dt, name)
    kwargs = {"dtype": dt, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        cls = model_class(wrapper_of(config)) if config is not None else _auto_class()
        model = cls.from_pretrained(path, **kwargs)
        processor = load_processor(path, trust_remote_code)
    except OSError as exc:
        raise UserError(_load_error(name, path, exc, local)) from exc
    except LOAD_ERRORS as exc:
        raise UserError(
            f"cannot load model {name!r} from {path}: {_first_line(exc)}. The folder looks "
            "damaged or incomplete: download or convert it again (ADABENCH_DEBUG=1 shows details)."
        ) from exc
    model.to(dev).eval()
    adallava = None
    if Path(path, "adallava_config.json").exists():
        from adabench.models.adallava.model import AdaLlavaHead

        try:
            adallava = AdaLlavaHead.from_pretrained(path, model).to(dev, dt).eval()
        except LOAD_ERRORS as exc:
            raise UserError(
                f"cannot load the AdaLLaVA head of {name!r} from {path}: {_first_line(exc)}. "
                "Convert or train it again (`adabench convert adallava` / `adabench train adallava`)."
            ) from exc
    from adabench.models.catalog import weights_label

    return LoadedModel(name, path, model, processor, dev, dt, adallava, weights=weights_label(name))


def check_model(name: str) -> None:
    """Raises UserError, from config files alone and without the network, when `load_model(name)`
    would refuse `name`: a config-only shipped name, a damaged or unsupported local folder
    (`check_model_folder`), or an unsupported hub model whose config.json is in the HF cache."""
    _refuse_config_only(name)
    path = resolve(name)
    if Path(path).is_dir():
        check_model_folder(Path(path))
    else:
        _config_without_network(name, path)


def _image_only_class(path: str):
    """Returns the wrapper's processor class without its video processor for a local folder or
    a hub id (its config.json in the HF cache) of a wrapper whose processor has one, else None
    (AutoProcessor loads it)."""
    import transformers

    from adabench.models.catalog import cached_hub_config
    from adabench.models.wrappers import wrapper_of
    from adabench.models.wrappers.base import image_only

    config = Path(path) / "config.json"
    if not config.is_file():
        config = cached_hub_config(path)
    if config is None:
        return None
    try:
        wrapper = wrapper_of(json.loads(config.read_text()))
    except (UserError, ValueError, OSError):
        return None
    cls = getattr(transformers, wrapper.processor_class)
    return image_only(cls) if "video_processor" in cls.get_attributes() else None


def _auto_class():
    """Returns the class for a hub model whose config could not be read first (no network):
    LlavaForConditionalGeneration, whose from_pretrained then reports why it cannot load."""
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration


def _refuse_config_only(name: str) -> None:
    if config_only(name):
        raise UserError(
            f"{name!r} is a shipped config without a checkpoint (no LlavaForConditionalGeneration "
            "with its decoder on the hub): measure it with --no-weights, or pass a local folder"
        )


def _load_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, KeyError, TypeError, RuntimeError]
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # older safetensors name it only inside the Rust extension
        pass
    return tuple(errors)


LOAD_ERRORS = _load_errors()
"""What a damaged checkpoint raises while it loads (bad JSON, truncated tensors, shape mismatch)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
ADALLAVA_KEYS = ("variant", "num_layers", "prefix_layers", "num_heads")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_error(name: str, path: str, exc: OSError, local: bool) -> str:
    """Returns the one-line message for an OSError from from_pretrained."""
    if local:
        return (
            f"cannot load model {name!r} from {path}: {_first_line(exc)}. The folder looks "
            "damaged or incomplete: download or convert it again."
        )
    offline = _offline()
    why = (
        "it is not in the HF cache and HF_HUB_OFFLINE=1 forbids downloads"
        if offline
        else (f"{_first_line(exc)}")
    )
    return (
        f"cannot load model {name!r} ({path}): {why}. Run `huggingface-cli download {path}` on "
        "a machine with network access (or pass a local folder)."
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _announce_download(repo_id: str) -> None:
    """Says on stderr that a hub model missing from the HF cache is about to be downloaded
    (or, with HF_HUB_OFFLINE=1, that it cannot be)."""
    try:
        cached = weights_in_cache(repo_id)
    except Exception:  # noqa: BLE001 - a malformed id: from_pretrained reports it
        return
    if cached:
        return
    if _offline():
        raise UserError(
            f"model {repo_id} is not in the HF cache and HF_HUB_OFFLINE=1 forbids downloads: run "
            f"`huggingface-cli download {repo_id}` where the network is reachable, or unset it."
        )
    from adabench import console

    console.warn(
        f"model {repo_id} is not in the HF cache: downloading it from the Hugging Face hub "
        "(set HF_HUB_OFFLINE=1 to forbid downloads)"
    )


def check_model_folder(path: Path) -> None:
    """Raises UserError naming the file when a local model folder is visibly damaged or holds a
    model adabench does not run (`catalog.check_supported`): an unreadable or unsupported
    config.json, a missing or truncated *.safetensors, no tokenizer, or an AdaLLaVA
    head whose config or weights are missing or broken."""
    config = read_json(path / "config.json", "model config")
    if not isinstance(config, dict) or "text_config" not in config:
        raise UserError(
            f"{path / 'config.json'} is not a Llava config (no text_config): is {path} a Llava "
            "model folder?"
        )
    check_supported(config, str(path))  # VLM class, decoder family, implemented fields
    weights = sorted(path.glob("*.safetensors"))
    base = [w for w in weights if w.name != "adallava.safetensors"]
    if not base and not any(path.glob("*.bin")):
        raise UserError(f"{path} holds no weights (*.safetensors): download or convert it again")
    for file in weights:
        check_safetensors(file)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"{path} has no tokenizer ({' or '.join(TOKENIZER_FILES)}): copy the tokenizer files "
            "of its base model into it"
        )
    if (path / "adallava_config.json").exists():
        head = read_json(path / "adallava_config.json", "AdaLLaVA config")
        missing = [k for k in ADALLAVA_KEYS if not isinstance(head, dict) or k not in head]
        if missing or head.get("variant") not in ("L", "H"):
            raise UserError(
                f"{path / 'adallava_config.json'} is not a valid AdaLLaVA config (needs variant L "
                f"or H and {', '.join(ADALLAVA_KEYS[1:])}): convert or train the head again"
            )
        if not (path / "adallava.safetensors").is_file():
            raise UserError(
                f"{path} has adallava_config.json but no adallava.safetensors: the AdaLLaVA head's "
                "weights are missing; convert or train it again"
            )


def read_json(path: Path, what: str):
    """Returns the JSON in `path`; a missing or unreadable file is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"{what} {path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{what} {path} is damaged ({_first_line(exc)})") from None


def check_safetensors(path: Path) -> None:
    """Raises UserError when `path` is not a whole safetensors file: a header that does not
    parse, or a size that differs from what the header describes (truncated or padded)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n > min(size - 8, 100_000_000):
                raise ValueError("header length beyond the end of the file")
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise UserError(
            f"{path} is not a valid safetensors file ({_first_line(exc)}): download or convert "
            "it again"
        ) from None
    expected = 8 + n + max(ends, default=0)
    if size != expected:
        raise UserError(
            f"{path} is truncated or damaged ({size} bytes, its header describes {expected}): "
            "download or convert it again"
        )


def _config_without_network(name: str, path: str):
    """Returns the LlavaConfig of `name` from a shipped config, a local folder or the HF cache,
    checked by `catalog.check_supported`; None when only the network has it."""
    try:
        config = shipped_config(name)
        if config is not None:
            check_supported(config, f"shipped config {name!r}")
            return config
        if Path(path).is_dir():
            return read_config(path, f"model {name!r}")
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
        return (
            read_config(Path(cached).parent, f"model {name!r}") if isinstance(cached, str) else None
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(
            f"cannot read the config of model {name!r} ({path}): {_first_line(exc)}"
        ) from None


def _hub_config(name: str, repo_id: str):
    """Returns the checked LlavaConfig of a hub model missing from the cache, downloading its
    config.json alone (a few KB) so that an unsupported model is refused before its weights are
    fetched; None when that download fails (from_pretrained then reports why)."""
    try:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - no network, a bad id, ...: from_pretrained says which
        return None
    return read_config(Path(file).parent, f"model {name!r}")


GB = 1024**3
KV_TOKENS = 2048
"""Sequence length the KV-cache estimate assumes (image tokens + prompt + answer, with room)."""


def estimate_bytes(config, dtype: torch.dtype) -> tuple[int, int]:
    """Returns (weight bytes, KV-cache bytes) of a Llava model at `dtype`: parameters counted on
    the meta device (nothing allocated), KV cache for KV_TOKENS tokens at batch size 1."""
    import copy

    from adabench.models.wrappers import model_class, wrapper_of

    with torch.device("meta"):
        model = model_class(wrapper_of(config))._from_config(copy.deepcopy(config))
    params = sum(p.numel() for p in model.parameters())
    size = torch.empty((), dtype=dtype).element_size()
    text = config.text_config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    kv = 2 * text.num_hidden_layers * kv_heads * head_dim * KV_TOKENS * size
    return params * size, kv


def available_bytes(device: torch.device) -> int | None:
    """Returns the memory free for a new model on `device`: CUDA free memory, or on CPU the
    smaller of /proc/meminfo MemAvailable and the cgroup limit's headroom; None if unknown."""
    if device.type == "cuda":
        try:
            return torch.cuda.mem_get_info(device)[0]
        except (RuntimeError, AssertionError):
            return None
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return max(0, min(found))


def check_memory(config, device: torch.device, dtype: torch.dtype, name: str) -> None:
    """Raises UserError, before anything is allocated, when model `name` at `dtype` plus its KV
    cache will not fit in the memory free on `device`; names needed vs available GB and the
    ways out. ADABENCH_SKIP_MEMORY_CHECK=1 skips it."""
    if os.environ.get("ADABENCH_SKIP_MEMORY_CHECK"):
        return
    free = available_bytes(device)
    if free is None:
        return
    weights, kv = estimate_bytes(config, dtype)
    if weights + kv <= free:
        return
    where = "GPU memory" if device.type == "cuda" else "RAM"
    ways = []
    if dtype == torch.float32:
        ways.append("--dtype bfloat16 (half the bytes)")
    if device.type == "cpu" and torch.cuda.is_available():
        ways.append("--device cuda")
    ways.append("a smaller model (e.g. tiny)")
    raise UserError(
        f"model {name!r} needs about {(weights + kv) / GB:.1f} GB at {str(dtype).removeprefix('torch.')} "
        f"({weights / GB:.1f} GB weights + {kv / GB:.1f} GB KV cache), but only {free / GB:.1f} GB "
        f"of {where} is available on {device}: use {', or '.join(ways)}; "
        "ADABENCH_SKIP_MEMORY_CHECK=1 tries anyway."
    )
