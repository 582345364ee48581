"""SoftQMIXConfig: QMIXConfig plus the temperature, the ablation variant and the
switches that tell the release's behaviour from the paper's and from its bugs.

Joint value (``joint_mixer``), a difference between release and paper:
- ``"sum"``: Q_tot = sum_i g_i(s, Q_i(a_i)). This is what the released code ran
  (its mixer computes the QMIX output and overwrites it with the sum) and
  what produced the paper's numbers; the default of ``variant="full"``.
- ``"qmix"``: a real QMIX mixer (the one named by ``mixer``) over g(Q), as the paper
  describes; the ablation branches (+entropy, +function f) used it over the raw Q.

Variants (the paper's ablation, Table 4), each read from its own branch of the authors' code:

| variant      | Q_tot                      | policy                       | extra loss | weighted TD |
|--------------|----------------------------|------------------------------|------------|-------------|
| "qmix"       | QMIX on Q                  | epsilon-greedy (plain QMIX)  | -          | -           |
| "entropy"    | QMIX on Q                  | softmax(Q_i / alpha)         | -          | no          |
| "function_f" | QMIX on Q                  | softmax(f(Q_i) / alpha)*     | f-fit      | no          |
| "full"       | sum_i g_i(Q_i) (release)   | softmax(f(g(Q_i)) / alpha)   | f-fit      | yes         |

(*) the +function-f branch's learner builds its target policy with the target f.
The temperature alpha is fixed; the release used 0.03 (0.005 in the +f branch).
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_softqmix.core.validation import Check, ConfigError, boolean, choice, number, optional
from rllib_softqmix.qmix.config import QMIXConfig, set_provided

VARIANTS = ("qmix", "entropy", "function_f", "full")
JOINT_MIXERS = ("sum", "qmix")


@dataclass(frozen=True)
class SoftVariant:
    """What one ablation variant uses (after the joint_mixer / weighted_td overrides)."""
    transform_g: bool
    transform_f: bool
    joint_mixer: str
    weighted_td: bool
    target_policy_f: str  # "online" or "target": the f of the learner's target policy


VARIANT_DEFAULTS = {
    "entropy": SoftVariant(False, False, "qmix", False, "online"),
    "function_f": SoftVariant(False, True, "qmix", False, "target"),
    "full": SoftVariant(True, True, "sum", True, "online"),
}


class SoftQMIXConfig(QMIXConfig):
    """Soft-QMIX (Chen et al. 2024): maximum-entropy QMIX with order-preserving transforms.

    Defaults are the release's SMACv2 config: alpha 0.03, TD(lambda 0.4),
    4 parallel envs per gradient step, batch 128, Adam 1e-3, targets every 200 episodes.
    """

    def __init__(self, algo_class=None):
        from rllib_softqmix.soft_qmix.algorithm import SoftQMIX

        super().__init__(algo_class=algo_class or SoftQMIX)
        self.temperature = 0.03
        self.variant = "full"
        self.joint_mixer = None
        self.weighted_td = None
        self.exact_entropy = False
        self.release_entropy_leak = False
        self.td_lambda = 0.4
        self.episodes_per_train_step = 4
        self.num_envs_per_env_runner = 4

    def training(
        self, *,
        temperature: Optional[float] = NotProvided,
        variant: Optional[str] = NotProvided,
        joint_mixer: Optional[str] = NotProvided,
        weighted_td: Optional[bool] = NotProvided,
        exact_entropy: Optional[bool] = NotProvided,
        release_entropy_leak: Optional[bool] = NotProvided,
        **kwargs,
    ) -> "SoftQMIXConfig":
        """Soft-QMIX settings, plus every QMIXConfig.training() setting.

        Args:
            temperature: alpha > 0, the entropy weight and policy temperature (fixed).
            variant: "full" (Soft-QMIX), "function_f", "entropy" or "qmix" (see the
                table in docs/algorithms/soft_qmix.md).
            joint_mixer: None (the variant's own), "sum" (the release) or "qmix" (the
                paper's description: the mixer named by ``mixer`` over g(Q)).
            weighted_td: None (the variant's own: on for "full", as released), or force
                the release's weighted TD loss (delta^2 weighted 0.5 where the f-fit
                error and delta have opposite signs) on or off.
            exact_entropy: use the exact per-agent entropy alpha sum_i H(pi_i) in the soft
                targets instead of the release's one-sample -alpha sum_i log pi_i(a'_i).
            release_entropy_leak: reproduce the release's bug that adds the entropy of
                the stored final state and of the padding to a terminated episode's
                targets (docs/algorithms/soft_qmix.md, Targets). Off: the corrected targets.
        """
        set_provided(self, locals())
        return super().training(**kwargs)

    # ---- what the variant uses ----------------------------------------------------
    def soft_variant(self) -> SoftVariant:
        default = VARIANT_DEFAULTS[self.variant]
        return SoftVariant(
            transform_g=default.transform_g, transform_f=default.transform_f,
            joint_mixer=default.joint_mixer if self.joint_mixer is None else self.joint_mixer,
            weighted_td=default.weighted_td if self.weighted_td is None else self.weighted_td,
            target_policy_f=default.target_policy_f)

    @property
    def is_soft(self) -> bool:
        return self.variant != "qmix"

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        if not self.is_soft:
            return super().get_default_rl_module_spec()
        from rllib_softqmix.soft_qmix.rl_module import SoftQMIXTorchRLModule

        return RLModuleSpec(module_class=SoftQMIXTorchRLModule)

    def get_default_learner_class(self):
        if not self.is_soft:
            return super().get_default_learner_class()
        from rllib_softqmix.soft_qmix.learner import SoftQMIXTorchLearner

        return SoftQMIXTorchLearner

    @property
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        included = dict(super()._model_config_auto_includes)
        if self.is_soft:
            variant = self.soft_variant()
            included.update(temperature=self.temperature, transform_g=variant.transform_g,
                            transform_f=variant.transform_f, joint_mixer=variant.joint_mixer)
        return included

    # ---- validation -----------------------------------------------------------------
    SETTINGS: Dict[str, Check] = {
        **QMIXConfig.SETTINGS,
        "temperature": number(0.0, low_open=True),
        "variant": choice(VARIANTS),
        "joint_mixer": optional(choice(JOINT_MIXERS)),
        "weighted_td": optional(boolean),
        "exact_entropy": boolean,
        "release_entropy_leak": boolean,
    }

    def validate_settings(self) -> None:
        super().validate_settings()
        if not self.is_soft:
            return
        variant = self.soft_variant()
        if variant.weighted_td and not variant.transform_f:
            raise ConfigError(
                f"{self.owner}: weighted_td=True needs the function f (its weights come from the "
                f"f-fit error), which variant={self.variant!r} does not have; use variant "
                f"'function_f' or 'full', or leave weighted_td unset.")
        if variant.joint_mixer == "sum" and self.mixer != "qmix":
            raise ConfigError(
                f"{self.owner}: mixer={self.mixer!r} is not used with joint_mixer='sum' (the sum of "
                f"g(Q)); set joint_mixer='qmix' to mix g(Q) with it.")
