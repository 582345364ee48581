"""A new variant of the family and new metrics, through the learner's hooks.

The variant, "HuberQMIX", is QMIX with the Huber loss in place of the squared TD error: a
config subclass (its one new setting, checked like the built-in ones), a learner subclass
that overrides one hook (``td_loss``) and an Algorithm subclass, registered with Tune by
name. Its learner also logs a metric of its own through ``extra_stats``
(learners/team/huber_clipped_fraction: the share of TD errors beyond the Huber threshold),
and an RLlib callback adds a metric derived from each result (return_per_env_step). The env
reports a third kind: numeric infos at an episode's end become env_runners/<key>_mean (here
the m-step game's ``good_payoff``: 1 when an episode took the optimal branch to the end).

    python examples/custom_variant.py                   # ~20 seconds on 2 cores
    python examples/custom_variant.py --iterations 1    # a smoke run
"""

import argparse
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402
from ray.rllib.algorithms.algorithm_config import NotProvided  # noqa: E402
from ray.tune.registry import register_trainable  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import rllib_softqmix  # noqa: E402,F401  (registers the family and the team envs)
from rllib_softqmix import QMIX, QMIXConfig  # noqa: E402
from rllib_softqmix.core.validation import number  # noqa: E402
from rllib_softqmix.qmix.config import set_provided  # noqa: E402
from rllib_softqmix.qmix.learner import QMIXTorchLearner, masked_mean  # noqa: E402


class HuberQMIXLearner(QMIXTorchLearner):
    """QMIX's learner with one hook replaced; everything else (targets, checks, target
    copies, checkpoints) is QMIX's."""

    def td_loss(self, config, td_error, mask, fwd_out):
        threshold = config.huber_delta
        huber = F.huber_loss(td_error, torch.zeros_like(td_error), reduction="none", delta=threshold)
        # Later hooks of the same loss read what earlier ones leave in fwd_out.
        fwd_out["huber_clipped"] = (td_error.detach().abs() > threshold).to(td_error.dtype)
        return masked_mean(huber, mask)

    def extra_stats(self, module, config, batch, fwd_out):
        stats = super().extra_stats(module, config, batch, fwd_out)
        stats["huber_clipped_fraction"] = masked_mean(fwd_out["huber_clipped"], batch["mask"])
        return stats


class HuberQMIXConfig(QMIXConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or HuberQMIX)
        self.huber_delta = 1.0

    def training(self, *, huber_delta=NotProvided, **kwargs) -> "HuberQMIXConfig":
        """HuberQMIX settings, plus every QMIXConfig.training() setting.

        Args:
            huber_delta: |TD error| beyond which the loss grows linearly, not quadratically.
        """
        set_provided(self, locals())  # checks the value against SETTINGS, then sets it
        return super().training(**kwargs)

    SETTINGS = {**QMIXConfig.SETTINGS, "huber_delta": number(0.0, low_open=True)}

    def get_default_learner_class(self):
        return HuberQMIXLearner


class HuberQMIX(QMIX):
    @classmethod
    def get_default_config(cls) -> HuberQMIXConfig:
        return HuberQMIXConfig()


register_trainable("HuberQMIX", HuberQMIX)  # tune.Tuner("HuberQMIX", ...) now works too


def add_return_per_env_step(algorithm, metrics_logger, result, **kwargs):
    """An on_train_result callback: runs at the end of every train(), may add keys."""
    runners = result.get("env_runners", {})
    if runners.get("episode_len_mean"):
        result["return_per_env_step"] = runners["episode_return_mean"] / runners["episode_len_mean"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=10, help="1000 env steps each")
    args = parser.parse_args()

    config = (HuberQMIXConfig()
              .environment("m_step_matrix", env_config={"m": 4})
              .training(huber_delta=1.0, agent_network="mlp", epsilon_anneal_time=5000)
              .callbacks(on_train_result=add_return_per_env_step)
              .evaluation(evaluation_interval=1, evaluation_duration=8)
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        for _ in range(args.iterations):
            result = algo.train()
    finally:
        algo.stop()
    learner = result["learners"]["team"]
    print(f"{type(algo).__name__} after {result['training_iteration']} iterations: "
          f"greedy return {result['evaluation']['env_runners']['episode_return_mean']:.2f} of 7, "
          f"td_loss={learner['td_loss']:.4f}, "
          f"huber_clipped_fraction={learner['huber_clipped_fraction']:.3f}, "
          f"return_per_env_step={result['return_per_env_step']:.3f}, "
          f"good_payoff_mean={result['env_runners']['good_payoff_mean']:.3f}")


if __name__ == "__main__":
    main()
