"""Ray executor placement decisions on fake cluster descriptions (no Ray needed)."""

import pytest

from adabench.errors import UserError
from adabench.sweep.cell import CellConfig
from adabench.sweep.ray_executor import RayExecutor, RayOptions, group_cells


class FakeRay:
    def __init__(self, nodes):
        self._nodes = [{"Alive": True, "Resources": r} for r in nodes] + [
            {"Alive": False, "Resources": {"CPU": 999, "GPU": 99}}  # dead nodes never count
        ]

    def nodes(self):
        return self._nodes


def _resources(nodes, device="auto", **opts):
    return RayExecutor(RayOptions(**opts))._resources(FakeRay(nodes), device)


def test_gpu_cluster_gets_whole_gpus_per_task():
    nodes = [{"CPU": 32, "GPU": 4}, {"CPU": 32, "GPU": 8}]
    # Tasks get a concrete index among their own GPUs (Ray renumbers them from cuda:0).
    assert _resources(nodes) == ("cuda:0", {"num_gpus": 1, "num_cpus": 1})
    assert _resources(nodes, "cuda") == ("cuda:0", {"num_gpus": 1, "num_cpus": 1})
    assert _resources(nodes, "cuda:3", gpus_per_task=8) == (
        "cuda:3",
        {"num_gpus": 8, "num_cpus": 1},
    )
    with pytest.raises(UserError, match=r"cuda:0 … cuda:1"):
        _resources(nodes, "cuda:3", gpus_per_task=2)
    with pytest.raises(UserError, match="no Ray node has 16 GPUs"):
        _resources(nodes, gpus_per_task=16)


def test_cpu_cluster_defaults_to_a_whole_small_node():
    nodes = [{"CPU": 8}, {"CPU": 16}]
    assert _resources(nodes) == ("cpu", {"num_cpus": 8})
    assert _resources(nodes, "cpu", cpus_per_task=12) == ("cpu", {"num_cpus": 12})
    assert _resources([{"CPU": 8, "GPU": 1}], "cpu") == ("cpu", {"num_cpus": 8})
    with pytest.raises(UserError, match="no Ray node has 32 CPUs"):
        _resources(nodes, cpus_per_task=32)
    with pytest.raises(UserError, match="has no GPU"):
        _resources(nodes, "cuda")


@pytest.mark.parametrize(
    ("opts", "match"),
    [({"gpus_per_task": 0}, "whole number"), ({"cpus_per_task": 0}, "cpus-per-task"),
     ({"max_retries": -1}, "max-retries")],
)  # fmt: skip
def test_bad_options_are_user_errors(opts, match):
    with pytest.raises(UserError, match=match):
        RayExecutor(RayOptions(**opts))


def test_groups_are_model_by_contention_in_grid_order():
    cells = [
        CellConfig(model=m, method="full", contention=c) for c in (0.0, 0.5) for m in ("a", "b")
    ]
    assert [(k, len(v)) for k, v in group_cells(cells)] == [
        ("a · c=0", 1), ("b · c=0", 1), ("a · c=0.5", 1), ("b · c=0.5", 1)
    ]  # fmt: skip
