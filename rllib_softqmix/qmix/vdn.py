"""VDN: QMIX's engine with the sum mixer Q_tot = sum_i Q_i (Sunehag et al. 2018)."""

from rllib_softqmix.qmix.algorithm import QMIX
from rllib_softqmix.qmix.config import QMIXConfig


class VDNConfig(QMIXConfig):
    """QMIXConfig with ``mixer="vdn"``."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or VDN)
        self.mixer = "vdn"


class VDN(QMIX):
    @classmethod
    def get_default_config(cls) -> VDNConfig:
        return VDNConfig()
