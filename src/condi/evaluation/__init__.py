"""Evaluation: per-clip scores, the samplers of Table III-V, metrics and timing (SPEC 3-6)."""
