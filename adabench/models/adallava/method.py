"""`adallava-l` and `adallava-h`: the latency token, the scheduler at block P, and the plan it picks."""

from __future__ import annotations

from adabench.models.methods import Method, Request


class _AdaLlava(Method):
    VARIES = "blocks (learned, per input)"
    MIN_BUDGET_TEXT = "P/N (0.5 by default)"
    ARGS: dict[str, str] = {}

    @classmethod
    def min_budget(cls, model) -> float:
        if model.adallava is None:
            return 0.5
        return model.adallava.min_budget()

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.head = model.adallava
        self.k = self.head.k_for(self.budget)

    def request(self, sample_id, input_ids, image_features) -> Request:
        return Request(
            extra_embeds=self.head.cached_latency_token(self.k),
            decide=self._decide,
            decide_at=self.head.config.prefix_layers,
            info={"units": self.k},
        )

    def _decide(self, hidden):
        return self.head.plan(hidden, self.k)


class AdaLlavaL(_AdaLlava):
    KIND = "blocks"
    PAPER = "AdaLLaVA-L (Xu et al., arXiv 2503.10905)"
    NAME = "adallava-l"
    NEEDS_ADALLAVA = "L"
    DESCRIPTION = "AdaLLaVA-L: latency token + scheduler at block P pick k = ⌊N·b⌋ − P of the last N − P blocks"


class AdaLlavaH(_AdaLlava):
    KIND = "heads"
    PAPER = "AdaLLaVA-H (Xu et al., arXiv 2503.10905)"
    NAME = "adallava-h"
    VARIES = "heads + MLP neuron groups (learned, per input)"
    NEEDS_ADALLAVA = "H"
    DESCRIPTION = (
        "AdaLLaVA-H: scheduler picks units of r heads + r MLP groups; kept weights are sliced"
    )
