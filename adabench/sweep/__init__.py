"""Sweeps: the grid of cells, the resumable runner and the results-folder store."""
