"""The shared QMIX engine: config, algorithm, learner, RLModule and EnvRunner."""

from rllib_softqmix.qmix.algorithm import QMIX
from rllib_softqmix.qmix.config import QMIXConfig
from rllib_softqmix.qmix.env_runner import TeamEnvRunner
from rllib_softqmix.qmix.learner import NonFiniteLossError, QMIXTorchLearner
from rllib_softqmix.qmix.rl_module import QMIXTorchRLModule
from rllib_softqmix.qmix.vdn import VDN, VDNConfig

__all__ = ["QMIX", "QMIXConfig", "VDN", "VDNConfig", "TeamEnvRunner", "QMIXTorchLearner",
           "QMIXTorchRLModule", "NonFiniteLossError"]
