"""Team envs: TeamEnv, the built-in games and the env-name registry."""

from rllib_softqmix.envs.gridworlds import Lumberjacks, TrafficJunction
from rllib_softqmix.envs.matrix_games import MStepMatrixGame, OneStepMatrixGame
from rllib_softqmix.envs.mpe_spread import spread_parallel_env
from rllib_softqmix.envs.registry import (UnknownEnvError, make_team_env, register_team_env,
                                          registered_env_names)
from rllib_softqmix.envs.team_env import TEAM, TeamEnv, TeamEnvError

register_team_env("one_step_matrix", OneStepMatrixGame, team_reward="mean")
register_team_env("m_step_matrix", MStepMatrixGame, team_reward="mean")
register_team_env("mpe_spread", spread_parallel_env, team_reward="sum")
register_team_env("lumberjacks", Lumberjacks, team_reward="sum")
register_team_env("traffic_junction", TrafficJunction, team_reward="sum")

__all__ = ["TEAM", "TeamEnv", "TeamEnvError", "UnknownEnvError", "Lumberjacks", "MStepMatrixGame",
           "OneStepMatrixGame", "TrafficJunction", "spread_parallel_env", "make_team_env",
           "register_team_env", "registered_env_names"]
