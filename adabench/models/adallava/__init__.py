"""AdaLLaVA on Hugging Face Llava models: latency encoder, scheduler, L and H execution plans, training."""
