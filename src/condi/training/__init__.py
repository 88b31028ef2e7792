"""Training: the teacher, Eq. 1 pseudo-labels, and the five student objectives (SPEC 1-3)."""
