"""A single-file adabench plugin, written against docs/methods.md alone.

    adabench eval --plugin examples/plugins/skip_odd.py --method skip-odd --budget 0.75
    adabench sweep --plugin examples/plugins/skip_odd.py --methods full,skip-odd --budgets 0.75

`skip-odd` keeps the first half of the decoder blocks and the even-numbered ones of the second
half: a fixed plan, so its smallest budget is the fraction of blocks it keeps (every block
costs the same FLOPs).
"""

from adabench.api import Method, Plan, Request, num_blocks, register_method


def kept_blocks(n: int) -> list[int]:
    """Returns the blocks skip-odd runs on an n-block decoder."""
    half = n // 2
    return list(range(half)) + [i for i in range(half, n) if i % 2 == 0]


@register_method
class SkipOdd(Method):
    NAME = "skip-odd"
    VARIES = "blocks (static)"
    DESCRIPTION = "first half of the blocks, then the even ones of the second half"

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns the fraction of blocks the fixed plan keeps."""
        n = num_blocks(model)
        return len(kept_blocks(n)) / n

    def request(self, sample_id, input_ids, image_features):
        """Returns the same plan for every sample."""
        n = num_blocks(self.model)
        return Request(plan=Plan.from_kept_blocks(n, kept_blocks(n)))
