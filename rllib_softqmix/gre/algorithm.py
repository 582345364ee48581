"""The QMIXGRE Algorithm: QMIX's loop with the GRE learner."""

from rllib_softqmix.gre.config import QMIXGREConfig
from rllib_softqmix.qmix.algorithm import QMIX


class QMIXGRE(QMIX):
    """QMIX with gradient entropy regularisation (Zhao et al., QMIX-GRE)."""

    @classmethod
    def get_default_config(cls) -> QMIXGREConfig:
        return QMIXGREConfig()
