"""Measurement core: timing, statistics, memory, GPU telemetry, environment (the analytic FLOPs
live beside the model, in `adabench/models/flops.py`).

Submodules are imported directly (`from adabench.measure.timing import Timer`) so that
using one does not import the others' dependencies.
"""
