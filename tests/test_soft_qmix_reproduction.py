"""Soft-QMIX's one-step matrix game result (paper Table 2) as a rate over seeds.

Setting (that of an independent plain-PyTorch prototype): 2 agents, MLP agent (no last
action), batch 128 episodes from a 5000-episode buffer, 4 new episodes per gradient step,
Adam 1e-3, 2500 episodes; Soft-QMIX as released (sum of g, weighted TD, alpha = 0.1);
the baseline is plain QMIX with the same settings and epsilon 1 -> 0.05 over 2000 steps.

Measured here on seeds 0-15 (2500 episodes): Soft-QMIX reaches (A, A) in 6/16 seeds at
alpha = 0.03, 7/16 at 0.1, 5/16 at 0.3 and 0/16 at 1.0 (one seed's table froze flat, a
greedy tie on A with uniform policies); QMIX in 0/16. With the current random stream of
uniform actions (since the sampling changes): 7/16 at alpha = 0.1 (seeds 0 4 5 8 11 12 14)
and QMIX 1/16 (seed 11), the same in Ray tasks as in one process. Every Soft-QMIX success had
Q_tot(A, A) in [7.3, 8.3] and probability 1.0 on A for both agents. That prototype
found 38-44% at alpha in {0.03, 0.1, 0.3} and QMIX 0/40. The thresholds below keep a
margin for float drift across machines, which can turn any seed's run into another draw:
at least 4/16 successes for Soft-QMIX (P(X <= 3) = 0.04 for 16 seeds at the measured 0.44);
at most 2/16 for QMIX and at least 14/16 of its seeds in the zero block (at QMIX's measured
1/32 here, P(X >= 3) = 0.01; a bound of 1/16 would fail with P(X >= 2) = 0.09).
"""

import pytest
import ray

from rllib_softqmix import SoftQMIXConfig
from rllib_softqmix.reproduction import one_step_outcome, success_rate

SEEDS = range(16)
SETTINGS = dict(agent_network="mlp", obs_last_action=False, train_batch_size_episodes=128,
                replay_buffer_capacity=5000, episodes_per_train_step=4, lr=1e-3,
                epsilon_anneal_time=2000)


def config(variant: str) -> SoftQMIXConfig:
    return (SoftQMIXConfig().environment("one_step_matrix")
            .training(variant=variant, temperature=0.1, **SETTINGS)
            .env_runners(num_envs_per_env_runner=4)
            .reporting(min_sample_timesteps_per_iteration=500))


@pytest.fixture(scope="module")
def outcomes(ray_session):
    """The 32 runs as Ray tasks of one CPU each: two at a time here, half the time of one
    after the other, with the same outcome per seed (each run seeds everything it uses)."""
    run = ray.remote(num_cpus=1)(one_step_outcome)
    pending = {variant: [run.remote(config(variant), seed, iterations=5) for seed in SEEDS]
               for variant in ("full", "qmix")}
    return {variant: ray.get(refs) for variant, refs in pending.items()}


def test_soft_qmix_reaches_the_optimum_clearly_more_often_than_qmix(outcomes):
    soft, qmix = success_rate(outcomes["full"]), success_rate(outcomes["qmix"])
    assert soft >= 4 / 16, [outcome.to_dict() for outcome in outcomes["full"]]
    assert qmix <= 2 / 16, [outcome.to_dict() for outcome in outcomes["qmix"]]
    assert soft - qmix >= 3 / 16


def test_every_soft_qmix_success_looks_like_the_papers_table(outcomes):
    for outcome in outcomes["full"]:
        if outcome.reached_optimum:
            assert outcome.greedy_return == 8.0
            assert outcome.matches_paper, outcome.to_dict()


def test_qmix_ends_in_the_zero_block(outcomes):
    in_block = [outcome for outcome in outcomes["qmix"]
                if set(outcome.greedy_actions) <= {1, 2} and outcome.greedy_return == 0.0]
    assert len(in_block) >= 14, [outcome.to_dict() for outcome in outcomes["qmix"]]
