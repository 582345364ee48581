"""Soft-QMIX on the shared QMIX engine: config, transforms, module, learner, algorithm."""

from rllib_softqmix.soft_qmix.algorithm import SoftQMIX
from rllib_softqmix.soft_qmix.config import SoftQMIXConfig, VARIANTS

__all__ = ["SoftQMIX", "SoftQMIXConfig", "VARIANTS"]
