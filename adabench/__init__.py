"""adabench: benchmark adaptive multimodal LLMs (AdaLLaVA and static baselines)."""

__version__ = "0.2.0"
