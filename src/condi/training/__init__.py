"""Training: the teacher, Eq. 1 pseudo-labels, and the five student objectives (docs/method.md, sections 1-3)."""
