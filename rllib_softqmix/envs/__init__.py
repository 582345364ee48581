"""Team envs: TeamEnv, the built-in games and the env-name registry."""

from functools import partial

from rllib_softqmix.envs.gridworlds import Lumberjacks, TrafficJunction
from rllib_softqmix.envs.matrix_games import MStepMatrixGame, OneStepMatrixGame
from rllib_softqmix.envs.mpe_spread import spread_parallel_env
from rllib_softqmix.envs.registry import (EnvDependencyError, UnknownEnvError, make_team_env,
                                          register_team_env, registered_env_names)
from rllib_softqmix.envs.smac import (SMACV2_SIZES, SMACV2_TEAMS, SMACParallelEnv,
                                      smacv2_parallel_env, smacv2_wrapper_class)
from rllib_softqmix.envs.smax import SMAX_ENVS, SMAXBackend, smax_parallel_env
from rllib_softqmix.envs.team_env import TEAM, TeamEnv, TeamEnvError

register_team_env("one_step_matrix", OneStepMatrixGame, team_reward="mean")
register_team_env("m_step_matrix", MStepMatrixGame, team_reward="mean")
register_team_env("mpe_spread", spread_parallel_env, team_reward="sum")
register_team_env("lumberjacks", Lumberjacks, team_reward="sum")
register_team_env("traffic_junction", TrafficJunction, team_reward="sum")
for _race in SMACV2_TEAMS:
    for _size in SMACV2_SIZES:
        register_team_env(f"smacv2_{_race}_{_size}v{_size}",
                          partial(smacv2_parallel_env, _race, _size),
                          check_requirements=smacv2_wrapper_class, team_reward="mean")
for _name, _scenario in SMAX_ENVS.items():
    register_team_env(_name, partial(smax_parallel_env, _scenario), team_reward="mean")

__all__ = ["TEAM", "TeamEnv", "TeamEnvError", "EnvDependencyError", "UnknownEnvError",
           "Lumberjacks", "MStepMatrixGame", "OneStepMatrixGame", "SMACParallelEnv", "SMAXBackend",
           "TrafficJunction", "spread_parallel_env", "make_team_env", "register_team_env",
           "registered_env_names"]
