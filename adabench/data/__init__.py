"""Data: suites (YAML → Samples), the procedural `shapes` generator, metrics."""
