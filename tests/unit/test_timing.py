"""Timer and Latency: fake mode for exact numbers, the real CPU clock for sanity."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from adabench.measure.timing import Latency, Timer


def test_fake_timer_returns_preset_durations_in_order():
    timer = Timer("cpu", fake_ms=[5.0, 7.0, 6.0])
    seen = []
    for _ in range(3):
        with timer.track() as run:
            assert math.isnan(run.elapsed_ms)
        seen.append(run.elapsed_ms)
    assert seen == [5.0, 7.0, 6.0]
    assert timer.values_ms == [5.0, 7.0, 6.0]
    lat = timer.latency()
    assert lat.count == 3 and lat.mean == 6.0 and lat.p50 == 6.0
    assert lat.values_ms == [5.0, 7.0, 6.0]


def test_fake_timer_running_out_says_so():
    timer = Timer("cpu", fake_ms=[1.0])
    with timer.track():
        pass
    with pytest.raises(ValueError, match="ran out"), timer.track():
        pass


def test_reset_discards_warmup():
    timer = Timer("cpu", fake_ms=[100.0, 100.0, 1.0, 2.0])
    for _ in range(2):
        with timer.track():
            pass
    timer.reset()
    for _ in range(2):
        with timer.track():
            pass
    assert timer.latency().values_ms == [1.0, 2.0]


def test_cpu_timer_measures_sleep():
    timer = Timer("cpu")
    with timer.track() as run:
        time.sleep(0.02)
    assert 19.0 <= run.elapsed_ms < 500.0


def test_failed_block_is_not_recorded():
    timer = Timer("cpu")
    with pytest.raises(RuntimeError), timer.track():
        raise RuntimeError("boom")
    assert timer.values_ms == []


def test_latency_from_values_matches_numpy():
    values = [10.0, 12.0, 11.0, 30.0, 10.5, 11.5]
    lat = Latency.from_values(values)
    x = np.array(values)
    assert lat.count == 6
    assert lat.mean == pytest.approx(x.mean())
    assert lat.std == pytest.approx(x.std(ddof=1))
    assert (lat.min, lat.max) == (10.0, 30.0)
    for q in (50, 90, 95, 99):
        assert getattr(lat, f"p{q}") == pytest.approx(np.percentile(x, q, method="linear"))
    assert lat.values_ms == values
    row = lat.to_dict()
    assert row["latency_ms_p99"] == lat.p99 and row["latency_ms_count"] == 6
    assert "ms" in str(lat) and "N=6" in str(lat)


def test_latency_single_and_empty():
    one = Latency.from_values([4.0])
    assert one.std == 0.0 and one.p99 == 4.0
    empty = Latency.from_values([])
    assert empty.count == 0 and math.isnan(empty.mean)
