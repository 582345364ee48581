"""QMIX-family cooperative MARL algorithms as an RLlib (new API stack) plugin.

Importing this package registers the algorithms with Tune by name ("QMIX", "VDN", "SoftQMIX",
"QMIXGRE", "MAVEN")
and the team envs by name ("one_step_matrix", "m_step_matrix", "mpe_spread").
"""

from ray.tune.registry import register_trainable

from rllib_softqmix.core.validation import ConfigError
from rllib_softqmix.envs import (TEAM, MStepMatrixGame, OneStepMatrixGame, TeamEnv, TeamEnvError,
                                 make_team_env, register_team_env, registered_env_names)
from rllib_softqmix.gre import QMIXGRE, QMIXGREConfig
from rllib_softqmix.maven import MAVEN, MAVENConfig
from rllib_softqmix.policy import CheckpointError, TeamPolicy
from rllib_softqmix.qmix import QMIX, VDN, NonFiniteLossError, QMIXConfig, VDNConfig
from rllib_softqmix.soft_qmix import SoftQMIX, SoftQMIXConfig

ALGORITHMS = {"QMIX": QMIX, "VDN": VDN, "SoftQMIX": SoftQMIX, "QMIXGRE": QMIXGRE,
              "MAVEN": MAVEN}

for _name, _algorithm in ALGORITHMS.items():
    register_trainable(_name, _algorithm)

__all__ = ["ALGORITHMS", "MAVEN", "MAVENConfig", "CheckpointError", "ConfigError", "NonFiniteLossError", "TeamPolicy", "QMIX", "QMIXConfig", "QMIXGRE", "QMIXGREConfig", "SoftQMIX", "SoftQMIXConfig", "VDN",
           "VDNConfig", "TEAM", "TeamEnv", "TeamEnvError", "MStepMatrixGame", "OneStepMatrixGame",
           "make_team_env", "register_team_env", "registered_env_names"]
