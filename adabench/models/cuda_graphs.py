"""`--cuda-graphs`: one decode step captured per plan (static KV buffers) and replayed per token.

A 7B decode step launches ~1,000 eager kernels, which on an H100 takes longer than the GPU
needs to run them (the step is launch-bound). A CUDA graph launches the whole step at once.
A graph replays fixed pointers and shapes, so the step runs on *static* buffers
(`execution.StaticKV`): per plan (and capacity bucket) one set of KV buffers of
`BUCKET_TOKENS`-rounded capacity, rotary tables of every position it can reach, the token
buffer, and device counters (each entry's cache length and the position) that the step
advances itself. Per request the prefill's KV prefix is copied in and the counters set (one
small host → device copy); every decode step is then one `token.copy_` and one replay.

Without capture (`capture=False`: CPU, and the tests) the same static-buffer step runs eagerly,
so its numerics are tested on CPU (tests/unit/test_cuda_graphs.py); the capture and replay
themselves are unverified until benchmarks/gpu_check.sh runs on a GPU.

The graphs are an LRU keyed by (plan, capacity bucket, dtype); their buffers count against
a cap of `FREE_FRACTION` of the device's free memory at creation (measure.memory.free_bytes)
and at most `MAX_GRAPHS` entries. A plan's first request captures its graph inside its timed
run (warm-up runs cover the plans of static methods; AdaLLaVA's per-input plans may not).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from adabench.measure.memory import free_bytes
from adabench.models.execution import (
    LlavaRunner,
    PrefillState,
    StaticKV,
    decode_step_static,
)

BUCKET_TOKENS = 256
"""Static KV capacity is the request's capacity rounded up to this, so samples share graphs."""
MAX_GRAPHS = 16
FREE_FRACTION = 0.25
"""The graphs' static buffers may hold at most this fraction of the free device memory."""
WARMUP_STEPS = 2
"""Eager steps on a side stream before capture (CUDA's rule: allocate and pick kernels first)."""


class StaticDecode:
    """One plan's static decode: buffers, counters and (with `capture`) its CUDA graph."""

    def __init__(self, runner: LlavaRunner, state: PrefillState, capacity: int) -> None:
        like = next(e.k for e in state.cache if e is not None)
        device = like.device
        self.runner, self.prepared, self.capacity = runner, state.prepared, capacity
        n = len(state.cache)
        self.counters = torch.zeros(n + 1, dtype=torch.long, device=device)
        keys = torch.arange(capacity, device=device)
        self.cache = [
            None
            if e is None
            else StaticKV(
                like.new_zeros(1, e.k.shape[1], capacity, e.k.shape[3]),
                like.new_zeros(1, e.v.shape[1], capacity, e.v.shape[3]),
                0,
                self.counters[j : j + 1],
                keys,
            )
            for j, e in enumerate(state.cache)
        ]
        positions = torch.arange(capacity, device=device)[None]
        self.rope = runner.rope(like.new_zeros(1, 1, runner.text.hidden_size), positions)
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.graph = None
        self.logits: torch.Tensor | None = None
        self.nbytes = sum(2 * e.k.numel() * e.k.element_size() for e in self.cache if e)

    def load(self, state: PrefillState) -> None:
        """Copies the request's KV prefix into the static buffers and sets the counters (each
        entry's length, then the next position)."""
        lengths = []
        for mine, theirs in zip(self.cache, state.cache):
            if mine is None:
                lengths.append(0)
                continue
            mine.k[:, :, : theirs.length].copy_(theirs.k[:, :, : theirs.length])
            mine.v[:, :, : theirs.length].copy_(theirs.v[:, :, : theirs.length])
            lengths.append(theirs.length)
        values = torch.tensor([*lengths, state.next_position], dtype=torch.long)
        self.counters.copy_(values)

    def _step(self) -> torch.Tensor:
        return decode_step_static(
            self.runner, self.token, self.prepared, self.cache, self.rope, self.counters
        )

    def capture(self) -> None:
        """Captures one decode step into a CUDA graph (after eager warm-up steps on a side
        stream; the counters are restored, so the first replay is the request's next step)."""
        saved = self.counters.clone()
        side = torch.cuda.Stream(self.token.device)
        side.wait_stream(torch.cuda.current_stream(self.token.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._step()
        torch.cuda.current_stream(self.token.device).wait_stream(side)
        self.counters.copy_(saved)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()

    def step(self, token_id: torch.Tensor) -> torch.Tensor:
        """Runs one decode step for `token_id` [1, 1]; returns logits [1, V] (a static buffer
        under a graph: read it before the next step)."""
        self.token.copy_(token_id)
        if self.graph is None:
            return self._step()
        self.graph.replay()
        return self.logits


class DecodeGraphs:
    """LRU of `StaticDecode`s keyed by (plan, capacity bucket, dtype), capped by bytes and count."""

    def __init__(self, capture: bool, limit_bytes: int | None = None) -> None:
        self.capture = capture
        self.limit_bytes = limit_bytes  # None: FREE_FRACTION of free memory at each creation
        self.decodes: OrderedDict = OrderedDict()
        self.captures = 0

    @property
    def nbytes(self) -> int:
        """Returns the bytes of the static KV buffers held."""
        return sum(d.nbytes for d in self.decodes.values())

    def get(self, runner: LlavaRunner, state: PrefillState) -> StaticDecode | None:
        """Returns the plan's StaticDecode, loaded with `state` (made, and captured when
        `capture`, on the plan's first request); None when no block attends (nothing static
        to hold: the eager step runs)."""
        first = next((e for e in state.cache if e is not None), None)
        if first is None:
            return None
        need = first.k.shape[2]
        capacity = -(-need // BUCKET_TOKENS) * BUCKET_TOKENS
        key = (state.plan, capacity, first.k.dtype)
        decode = self.decodes.get(key)
        if decode is None:
            decode = StaticDecode(runner, state, capacity)
            self._make_room(decode.nbytes, first.k.device)
            decode.load(state)
            if self.capture:
                decode.capture()
                self.captures += 1
            self.decodes[key] = decode
            return decode
        self.decodes.move_to_end(key)
        decode.load(state)
        return decode

    def _make_room(self, nbytes: int, device: torch.device) -> None:
        limit = self.limit_bytes
        if limit is None:
            free = free_bytes(device)
            limit = None if free is None else int(FREE_FRACTION * (free + self.nbytes))
        while self.decodes and (
            len(self.decodes) >= MAX_GRAPHS or (limit is not None and self.nbytes + nbytes > limit)
        ):
            self.decodes.popitem(last=False)

    def clear(self) -> None:
        """Drops every graph and its buffers."""
        self.decodes.clear()


def static_decode(runner: LlavaRunner, state: PrefillState, capture: bool) -> StaticDecode | None:
    """Returns the runner's StaticDecode for `state`'s plan, loaded with the request, or None
    (see `DecodeGraphs.get`); the runner keeps one `DecodeGraphs` as `runner.decode_graphs`."""
    if runner.decode_graphs is None or runner.decode_graphs.capture != capture:
        runner.decode_graphs = DecodeGraphs(capture)
    return runner.decode_graphs.get(runner, state)
