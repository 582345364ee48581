"""QMIXGREConfig: QMIX with the gradient-entropy regulariser (QMIX-GRE, docs/algorithms/gre.md).

Defaults are the GRE release's base learner, classic PyMARL's QMIX: one-step
double-Q targets, loss mean(delta^2) without the 1/2, RMSprop 5e-4 (alpha 0.99, eps 1e-5),
one env and one gradient step per episode, batch 32 of a 5000-episode buffer, epsilon
1 -> 0.05 over 50k steps, targets every 200 episodes, two-layer hypernetworks.
"""

from typing import Dict, Optional

from ray.rllib.algorithms.algorithm_config import NotProvided

from rllib_softqmix.core.validation import Check, ConfigError, choice, number
from rllib_softqmix.qmix.config import QMIXConfig, set_provided

GRE_GRADIENTS = ("autograd", "release_closed_form")


class QMIXGREConfig(QMIXConfig):

    def get_default_learner_class(self):
        from rllib_softqmix.gre.learner import QMIXGRETorchLearner

        return QMIXGRETorchLearner

    def __init__(self, algo_class=None):
        from rllib_softqmix.gre.algorithm import QMIXGRE

        super().__init__(algo_class=algo_class or QMIXGRE)
        self.gre_lambda = 1e-3
        self.gre_gradient = "autograd"
        self.use_classic_pymarl_defaults()  # the base of the GRE release

    def training(
        self, *,
        gre_lambda: Optional[float] = NotProvided,
        gre_gradient: Optional[str] = NotProvided,
        **kwargs,
    ) -> "QMIXGREConfig":
        """GRE settings, plus every QMIXConfig.training() setting.

        Args:
            gre_lambda: weight lambda >= 0 of the regulariser: loss = TD + lambda * mean
                normalised credit entropy. 0 is QMIX exactly. The paper searched
                {1e-3, 5e-4, 1e-4}; the release's default is 1e-3.
            gre_gradient: how dQ_tot/dQ_i is computed for the regulariser: "autograd" (the
                correct derivative, default) or "release_closed_form" (the released
                closed form with its ELU-derivative slip, for exact reproduction).
        """
        set_provided(self, locals())
        return super().training(**kwargs)

    SETTINGS: Dict[str, Check] = {
        **QMIXConfig.SETTINGS,
        "gre_lambda": number(0.0),
        "gre_gradient": choice(GRE_GRADIENTS),
    }

    def validate_settings(self) -> None:
        super().validate_settings()
        if self.gre_lambda > 0 and self.mixer != "qmix":
            raise ConfigError(
                f"{self.owner}: mixer={self.mixer!r} with gre_lambda={self.gre_lambda}: the "
                f"regulariser shapes the QMIX mixer's credit; use mixer='qmix' (VDN and "
                f"qmix_simple give every agent equal credit) or gre_lambda=0.")
