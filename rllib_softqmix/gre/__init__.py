"""QMIX-GRE on the shared QMIX engine."""

from rllib_softqmix.gre.algorithm import QMIXGRE
from rllib_softqmix.gre.config import QMIXGREConfig

__all__ = ["QMIXGRE", "QMIXGREConfig"]
