"""Llama (llava-1.5's Vicuna, Llama 2/3): pre-norm RMSNorm blocks, SwiGLU, optional biases."""

from adabench.models.families.base import Family

FAMILY = Family(name="llama", model_types=("llama",), label="Llama", note="RMSNorm, SwiGLU, RoPE")
