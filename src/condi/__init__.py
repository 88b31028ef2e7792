"""condi: Confidence Distillation (ConDi) for efficient action recognition.

Reference implementation of Shalmani, Chiang and Zheng, "Efficient Action Recognition Using
Confidence Distillation" (arXiv 2109.02137), following ``docs/method.md``.
"""

__version__ = "0.1.0"
