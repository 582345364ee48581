"""QMIX-family cooperative MARL algorithms as an RLlib (new API stack) plugin.

Importing this package registers the algorithms with Tune by name ("QMIX", "VDN", "SoftQMIX",
"QMIXGRE", "MAVEN")
and the team envs by name ("one_step_matrix", "m_step_matrix", "mpe_spread"), and lets
RLlib's ``Algorithm.from_checkpoint`` / ``restore_from_path`` take relative paths.
"""

import logging
import os

# RLlib's test utilities, imported with ray.rllib, import JAX and flax wherever they are
# installed (the [smax] extra installs them): ~120 MB of RSS in every process that imports
# RLlib, and nothing on the torch stack uses them (SMAX imports JAX itself). RLlib's own switch
# skips that import, and its notice about it is dropped. Set before the first ray.rllib import
# of this process; Ray's workers inherit it when the driver starts Ray after this import.
os.environ.setdefault("RLLIB_TEST_NO_JAX_IMPORT", "1")
logging.getLogger("ray.rllib.utils.framework").addFilter(
    lambda record: record.getMessage() != "Not importing JAX for test purposes.")

from ray.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from ray.tune.registry import register_trainable  # noqa: E402

from rllib_softqmix.core.checkpoints import accept_relative_paths  # noqa: E402
from rllib_softqmix.core.validation import ConfigError  # noqa: E402
from rllib_softqmix.envs import (  # noqa: E402
    TEAM, MStepMatrixGame, OneStepMatrixGame, TeamEnv, TeamEnvError, make_team_env,
    register_team_env, registered_env_names)
from rllib_softqmix.gre import QMIXGRE, QMIXGREConfig  # noqa: E402
from rllib_softqmix.maven import MAVEN, MAVENConfig  # noqa: E402
from rllib_softqmix.policy import CheckpointError, TeamPolicy  # noqa: E402
from rllib_softqmix.qmix import QMIX, VDN, NonFiniteLossError, QMIXConfig, VDNConfig  # noqa: E402
from rllib_softqmix.soft_qmix import SoftQMIX, SoftQMIXConfig  # noqa: E402

ALGORITHMS = {"QMIX": QMIX, "VDN": VDN, "SoftQMIX": SoftQMIX, "QMIXGRE": QMIXGRE,
              "MAVEN": MAVEN}

for _name, _algorithm in ALGORITHMS.items():
    register_trainable(_name, _algorithm)
# Algorithm.from_checkpoint("results/.../checkpoint_000004") and restore_from_path(...) with a
# relative path, which RLlib's own loader refuses (ArrowInvalid: URI has empty scheme).
accept_relative_paths(Algorithm)

__all__ = ["ALGORITHMS", "MAVEN", "MAVENConfig", "CheckpointError", "ConfigError", "NonFiniteLossError", "TeamPolicy", "QMIX", "QMIXConfig", "QMIXGRE", "QMIXGREConfig", "SoftQMIX", "SoftQMIXConfig", "VDN",
           "VDNConfig", "TEAM", "TeamEnv", "TeamEnvError", "MStepMatrixGame", "OneStepMatrixGame",
           "make_team_env", "register_team_env", "registered_env_names"]
