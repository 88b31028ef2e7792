"""Datasets: readers for UCF-101, Kinetics, SSv2 and user folders, the synthetic benchmark,
clip indexing (N = ceil(T / L) clips per video) and cached clip loading."""
