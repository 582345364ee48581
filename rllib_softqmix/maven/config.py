"""MAVENConfig: QMIX conditioned on a per-episode latent z, with a mutual-information
loss and a learned latent policy (MAVEN, Mahajan et al. 2019, arXiv:1910.07483).

Defaults are MAVEN's "noisemix" settings on classic PyMARL QMIX: one-step
double-Q targets, loss mean(delta^2), RMSprop 5e-4, batch 32, single-layer hypernetworks
over [s ; z], targets every 200 episodes, noise_dim 2, mi_loss 1, a per-step
discriminator (32 wide, 2 layers), uniform z. The paper's matrix-game run
(tune_configs/maven_m_step_matrix.yaml) uses noise_dim 16, the GRU aggregator, a learned
z-policy with 100 REINFORCE steps per episode and entropy_scaling 0.001.
"""

from typing import Dict, Optional

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_softqmix.core.validation import Check, ConfigError, boolean, choice, integer, number
from rllib_softqmix.qmix.config import QMIXConfig, set_provided

Z_POLICIES = ("uniform", "learned")
TEST_Z = ("policy", "uniform")
Z_ENTROPY_BONUSES = ("exact", "release_sampled")


class MAVENConfig(QMIXConfig):

    def __init__(self, algo_class=None):
        from rllib_softqmix.maven.algorithm import MAVEN

        super().__init__(algo_class=algo_class or MAVEN)
        self.noise_dim = 2
        self.z_policy = "uniform"
        self.test_z = "policy"
        self.mi_loss = 1.0
        self.rnn_discrim = False
        self.rnn_agg_size = 32
        self.discrim_size = 32
        self.discrim_layers = 2
        self.hard_qs = False
        self.mi_intrinsic = False
        self.mi_scaler = 0.1
        self.bandit_iters = 8
        self.bandit_batch = 64
        self.bandit_buffer = 512
        self.entropy_scaling = 0.001
        self.z_entropy_bonus = "exact"
        self.use_classic_pymarl_defaults()  # the base of the MAVEN release, with its mixer:
        self.hypernet_layers = 1

    def training(
        self, *,
        noise_dim: Optional[int] = NotProvided,
        z_policy: Optional[str] = NotProvided,
        test_z: Optional[str] = NotProvided,
        mi_loss: Optional[float] = NotProvided,
        rnn_discrim: Optional[bool] = NotProvided,
        rnn_agg_size: Optional[int] = NotProvided,
        discrim_size: Optional[int] = NotProvided,
        discrim_layers: Optional[int] = NotProvided,
        hard_qs: Optional[bool] = NotProvided,
        mi_intrinsic: Optional[bool] = NotProvided,
        mi_scaler: Optional[float] = NotProvided,
        bandit_iters: Optional[int] = NotProvided,
        bandit_batch: Optional[int] = NotProvided,
        bandit_buffer: Optional[int] = NotProvided,
        entropy_scaling: Optional[float] = NotProvided,
        z_entropy_bonus: Optional[str] = NotProvided,
        **kwargs,
    ) -> "MAVENConfig":
        """MAVEN settings, plus every QMIXConfig.training() setting.

        Args:
            noise_dim: size Z >= 1 of the one-hot latent z, drawn once per episode.
            z_policy: "uniform" z, or "learned": pi_z(z | s_0) trained by REINFORCE on
                episode returns (the paper's runs: the "EZ" bandit policy).
            test_z: how evaluation (and TeamPolicy) draws z: "policy" (from pi_z, as
                released; uniform while z_policy is uniform) or "uniform". Evaluation also
                reports the other one when z_policy is learned.
            mi_loss: weight >= 0 of the discriminator's cross-entropy in the loss.
            rnn_discrim: aggregate the behaviour features with a GRU (initial state of
                ones, as released) and discriminate once per episode, instead of per step.
            rnn_agg_size: the aggregator's hidden size.
            discrim_size: width of the discriminator's layers.
            discrim_layers: number of hidden layers of the discriminator (>= 1).
            hard_qs: one-hot argmax of Q instead of softmax(Q) in the features.
            mi_intrinsic: detach the features and add mi_scaler * cross-entropy to the
                rewards instead (needs rnn_discrim False; off in the paper's runs).
            mi_scaler: scale of that intrinsic reward (>= 0).
            bandit_iters: REINFORCE steps of pi_z after every training rollout.
            bandit_batch: (s_0, z, return) samples per step, drawn with replacement.
            bandit_buffer: how many of the latest episodes' (s_0, z, return) are kept.
            entropy_scaling: weight >= 0 of pi_z's entropy bonus.
            z_entropy_bonus: "exact" (default): the bonus is the entropy of
                pi_z(. | s_0) of each sample, so it pulls pi_z towards uniform.
                "release_sampled": the release's term, minus the log-probability of the
                buffered z; on-policy its expected gradient is zero, so it acts only as
                a constant subtracted from the returns. For exact reproduction.
        """
        set_provided(self, locals())
        return super().training(**kwargs)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_softqmix.maven.rl_module import MAVENTorchRLModule

        return RLModuleSpec(module_class=MAVENTorchRLModule)

    def get_default_learner_class(self):
        from rllib_softqmix.maven.learner import MAVENTorchLearner

        return MAVENTorchLearner

    @property
    def _model_config_auto_includes(self):
        return {**super()._model_config_auto_includes,
                **{key: getattr(self, key) for key in (
                    "noise_dim", "z_policy", "test_z", "rnn_discrim", "rnn_agg_size",
                    "discrim_size", "discrim_layers")}}

    SETTINGS: Dict[str, Check] = {
        **QMIXConfig.SETTINGS,
        "noise_dim": integer(1),
        "z_policy": choice(Z_POLICIES),
        "test_z": choice(TEST_Z),
        "mi_loss": number(0.0),
        "rnn_discrim": boolean,
        "rnn_agg_size": integer(1),
        "discrim_size": integer(1),
        "discrim_layers": integer(1),
        "hard_qs": boolean,
        "mi_intrinsic": boolean,
        "mi_scaler": number(0.0),
        "bandit_iters": integer(1),
        "bandit_batch": integer(1),
        "bandit_buffer": integer(1),
        "entropy_scaling": number(0.0),
        "z_entropy_bonus": choice(Z_ENTROPY_BONUSES),
    }

    def validate_settings(self) -> None:
        super().validate_settings()
        if self.mi_intrinsic and self.rnn_discrim:
            raise ConfigError(f"{self.owner}: mi_intrinsic=True needs rnn_discrim=False (the intrinsic "
                              f"reward is the per-step cross-entropy, as released).")
        if self.mixer != "qmix":
            raise ConfigError(f"{self.owner}: mixer={self.mixer!r} is invalid; MAVEN conditions the "
                              f"QMIX mixer's hypernetworks on [s ; z], so mixer must be 'qmix'.")
