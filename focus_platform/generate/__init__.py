"""Synthetic raw billing exports for demos, tests and benchmarks (domain code, no Dagster)."""

from focus_platform.generate.aws_cur import GenerationSummary, generate_aws_cur

__all__ = ["GenerationSummary", "generate_aws_cur"]
