"""Evaluation: per-clip scores, the samplers of Table III-V, metrics and timing (docs/method.md, sections 3-6)."""
