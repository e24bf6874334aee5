"""adabench: benchmark adaptive multimodal LLMs (AdaLLaVA and static baselines)."""

__version__ = "0.3.0"
