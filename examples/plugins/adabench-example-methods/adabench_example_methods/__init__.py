"""An installable adabench plugin: `pip install -e examples/plugins/adabench-example-methods`,
then `adabench methods list` shows its methods with origin "entry point ...".

every-other-block   a block method: keeps ⌊b·N⌋ blocks, taking the even ones first
every-other-token   a token method: keeps every s-th visual token (arg stride, default 2)
"""

from adabench.api import (
    Method,
    Plan,
    Request,
    TokenChoice,
    TokenMethod,
    kept_count,
    num_blocks,
    register_method,
)

__version__ = "0.1.0"


@register_method
class EveryOtherBlock(Method):
    NAME = "every-other-block"
    VARIES = "blocks (static)"
    DESCRIPTION = "⌊b·N⌋ blocks: the even ones first, then the odd ones from the start"

    def request(self, sample_id, input_ids, image_features):
        """Returns the same plan for every sample: even blocks, then odd, up to ⌊b·N⌋."""
        n = num_blocks(self.model)
        order = list(range(0, n, 2)) + list(range(1, n, 2))
        return Request(plan=Plan.from_kept_blocks(n, order[: kept_count(self.budget, n)]))


@register_method
class EveryOtherToken(TokenMethod):
    NAME = "every-other-token"
    VARIES = "visual tokens (before the LLM)"
    DESCRIPTION = "keeps every s-th visual token (arg stride); every block runs"
    ARGS = {"stride": "keep one visual token in this many (default 2)"}

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None):
        """Returns the selection: visual tokens 0, s, 2s, … replace the image's."""
        stride = max(1, int(self.args.get("stride", 2)))
        kept = image_features[:, ::stride]
        return TokenChoice(
            image_features=kept,
            visual_tokens_removed=image_features.shape[1] - kept.shape[1],
            info={"kept_visual_tokens": int(kept.shape[1])},
        )
