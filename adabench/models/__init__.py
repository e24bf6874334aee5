"""Models: loading checkpoints, execution plans, methods (AdaLLaVA and baselines)."""
