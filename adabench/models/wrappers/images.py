"""Image normalisation constants the synthetic processors use (OpenAI CLIP's)."""

from adabench.data.hf_suites import CLIP_MEAN

CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

__all__ = ["CLIP_MEAN", "CLIP_STD"]
