"""The SoftQMIX Algorithm: QMIX's loop; only the logged exploration setting differs."""

from typing import Dict

from rllib_softqmix.qmix.algorithm import QMIX
from rllib_softqmix.soft_qmix.config import SoftQMIXConfig


class SoftQMIX(QMIX):
    """Soft-QMIX (Chen et al. 2024). ``variant="qmix"`` runs plain QMIX for ablations."""

    @classmethod
    def get_default_config(cls) -> SoftQMIXConfig:
        return SoftQMIXConfig()

    def exploration_metrics(self) -> Dict[str, float]:
        """The temperature alpha; epsilon is not used by the soft policy."""
        if not self.config.is_soft:
            return super().exploration_metrics()
        return {"temperature": self.config.temperature}
