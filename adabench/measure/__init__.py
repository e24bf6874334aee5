"""Measurement core: timing, statistics, analytic FLOPs, memory, GPU telemetry, environment.

Submodules are imported directly (`from adabench.measure.flops import prefill_flops`) so that
using one does not import the others' dependencies.
"""
