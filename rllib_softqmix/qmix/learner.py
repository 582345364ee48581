"""The QMIX learner: double-Q TD(lambda) loss over padded episodes (spec 1.3, 1.4).

The loss is assembled from small overridable steps so that Soft-QMIX, QMIX-GRE and
MAVEN add or replace terms without copying it:

    loss_terms  ->  chosen joint values Q_tot         (``joint_values``)
                ->  rewards r (standardised, intrinsic) (``rewards``)
                ->  bootstrap values V and bonus E     (``bootstrap_values``)
                ->  TD(lambda) targets                 (``td_targets``)
                ->  check |Q_tot| against the range r allows (``core.value_range``)
                ->  {"td_loss": ..., **extra_losses}   (``extra_losses``)
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_EPISODES_LIFETIME

from rllib_softqmix.core.action_selection import greedy
from rllib_softqmix.core.credit import normalized_entropy
from rllib_softqmix.core.process import configure_compute_process
from rllib_softqmix.core.running_stats import RunningHistogram, RunningMeanStd
from rllib_softqmix.core.targets import lambda_returns, last_valid_step
from rllib_softqmix.core.value_range import ValueRange, ValueRangeError

logger = logging.getLogger(__name__)

TRAINING_ITERATION = "training_iteration"
CREDIT_PERCENTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class NonFiniteLossError(FloatingPointError):
    """A loss term, the Q-values, a gradient or a collected reward/observation was NaN or
    inf; the update was not applied."""


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def chosen_local_q(batch: Dict[str, Any], fwd_out: Dict[str, Any]) -> torch.Tensor:
    """Each agent's local Q of its taken action, [B, T, N] for t = 0..T-1."""
    return fwd_out["q"][:, :-1].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)


class QMIXTorchLearner(TorchLearner):
    """Learner for the whole QMIX family; subclasses override the hooks above."""

    # Optimizers that the TD update does not step (MAVEN's pi_z trains on its own).
    SEPARATE_OPTIMIZERS: Tuple[str, ...] = ()

    def build(self) -> None:
        configure_compute_process(self.config.torch_num_threads)
        super().build()
        self.module.foreach_module(lambda module_id, module: module.make_target_networks())
        self._last_target_update_episode = 0
        self._reward_stats = RunningMeanStd()
        self._credit_histogram = RunningHistogram()
        self._value_range = ValueRange()
        self._last_divergence_warning = 0.0

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        module = self.module[module_id].unwrapped()
        params = self.td_parameters(module)
        if config.optimizer_type == "adam":
            optimizer = torch.optim.Adam(params, fused=True)  # one kernel per step, 2x foreach on CPU
        else:
            optimizer = torch.optim.RMSprop(params, alpha=config.optim_alpha, eps=config.optim_eps,
                                            foreach=True)
        self.register_optimizer(module_id=module_id, optimizer=optimizer, params=params,
                                lr_or_lr_schedule=config.lr)

    def td_parameters(self, module) -> List[torch.nn.Parameter]:
        """The parameters of the main optimiser: all but the target copies."""
        return module.online_parameters()

    # ---- the loss -----------------------------------------------------------
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out) -> torch.Tensor:
        module = self.module[module_id].unwrapped()
        self._raise_if_not_finite(config, {"q": fwd_out["q"]}, "the Q-values")
        try:
            terms, stats = self.loss_terms(module, config, batch, fwd_out)
        except RuntimeError:  # e.g. sampling from the probabilities of a NaN target network
            self._raise_if_not_finite(config, dict(module.named_parameters()), "the parameter")
            raise
        self._raise_if_not_finite(config, terms, "the loss term")
        total = sum(terms.values())
        self.metrics.log_dict({name: value.detach() for name, value in {**terms, **stats}.items()},
                              key=module_id, window=1)
        return total

    def loss_terms(self, module, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]
                   ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """Loss terms (summed into the loss) and diagnostics (logged only).

        Hooks may leave intermediate tensors in ``fwd_out`` for later hooks.
        """
        mask = batch["mask"]
        q_tot = self.joint_values(module, batch, fwd_out)
        with torch.no_grad():
            rewards = self.rewards(config, batch, fwd_out)
            values, bonus = self.bootstrap_values(module, config, batch, fwd_out)
            terminated = (batch["terminated"] if config.bootstrap_truncated_episodes
                          else last_valid_step(mask))
            targets = self.td_targets(config, rewards, terminated, mask, values, bonus)
        q_abs_max = self._check_value_range(config, q_tot.detach(), rewards, bonus, mask)
        td_error = q_tot - targets
        terms = {"td_loss": self.td_loss(config, td_error, mask, fwd_out)}
        terms.update(self.extra_losses(module, config, batch, fwd_out, q_tot, td_error))
        stats = {
            "q_tot_mean": masked_mean(q_tot.detach(), mask),
            "target_mean": masked_mean(targets, mask),
            "td_error_abs_mean": masked_mean(td_error.detach().abs(), mask),
            "q_tot_abs_max": torch.tensor(q_abs_max),
            "q_tot_bound": torch.tensor(self._value_range.bound(
                config.gamma, config.bootstrap_truncated_episodes, config.divergence_margin)),
        }
        stats.update(self.extra_stats(module, config, batch, fwd_out))
        stats.update(self.credit_stats(module, batch, fwd_out))
        return terms, stats

    def joint_values(self, module, batch: Dict[str, Any], fwd_out: Dict[str, Any]) -> torch.Tensor:
        """Q_tot [B, T] of the taken actions, t = 0..T-1.

        Keeps (local Q, Q_tot) in ``fwd_out["credit_graph"]`` so that ``credit_gradients``
        can differentiate this graph instead of running the mixer again.
        """
        chosen = chosen_local_q(batch, fwd_out)
        q_tot = module.joint_value(chosen, batch, slice(0, -1))
        fwd_out["credit_graph"] = (chosen, q_tot)
        return q_tot

    def bootstrap_values(self, module, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]
                         ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Double-Q bootstrap V_t = TargetMixer(Q_target(argmax_online), s_t), t = 0..T.

        Returns (V [B, T+1], bonus [B, T+1] or None).
        """
        target_q = module.forward_target(batch)["target_q"]
        avail = batch["action_mask"]
        best = greedy(fwd_out["q"].detach() if config.double_q else target_q, avail)
        chosen = target_q.gather(-1, best.unsqueeze(-1)).squeeze(-1)
        return module.mix(module._target_mixer, chosen, batch, slice(None)), None

    def td_targets(self, config, rewards: torch.Tensor, terminated: torch.Tensor,
                   mask: torch.Tensor, values: torch.Tensor,
                   bonus: Optional[torch.Tensor]) -> torch.Tensor:
        """TD(lambda) targets [B, T] from rewards, terminations, mask [B, T] and the
        bootstrap values (and bonus) [B, T+1]."""
        return lambda_returns(rewards, terminated, mask, values, config.gamma, config.td_lambda,
                              bonus)

    def rewards(self, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]) -> torch.Tensor:
        """Team rewards [B, T], standardised with running statistics if configured."""
        rewards, mask = batch["rewards"], batch["mask"]
        if config.standardize_rewards:
            self._reward_stats.update(rewards[mask > 0])
            rewards = self._reward_stats.normalize(rewards)
        return rewards

    def td_loss(self, config, td_error: torch.Tensor, mask: torch.Tensor,
                fwd_out: Dict[str, Any]) -> torch.Tensor:
        """sum m (scale delta^2) / sum m, scale 1/2 in pymarl2, 1 in classic PyMARL."""
        return config.td_loss_scale * masked_mean(td_error.pow(2), mask)

    def extra_losses(self, module, config, batch, fwd_out, q_tot, td_error
                     ) -> Dict[str, torch.Tensor]:
        """Additional loss terms of an algorithm built on QMIX (none for QMIX)."""
        return {}

    def extra_stats(self, module, config, batch, fwd_out) -> Dict[str, torch.Tensor]:
        """Additional diagnostics to log (none for QMIX)."""
        return {}

    def credit_gradients(self, module, batch: Dict[str, Any], fwd_out: Dict[str, Any],
                         create_graph: bool = False) -> torch.Tensor:
        """dQ_tot/dQ_i [B, T, N] at the taken actions, by autograd through ``joint_value``.

        The local Q are detached leaves, so a loss on these gradients (with
        ``create_graph``) reaches only the parameters between local Q and Q_tot.
        """
        chosen, q_tot = fwd_out.get("credit_graph", (None, None))
        if not create_graph and chosen is not None and q_tot.requires_grad:
            # Backward through the mixer only; the graph stays for the loss's backward.
            (gradients,) = torch.autograd.grad(q_tot.sum(), chosen, retain_graph=True)
            return gradients
        leaf = chosen_local_q(batch, fwd_out).detach().requires_grad_(True)
        with torch.enable_grad():
            q_tot = module.joint_value(leaf, batch, slice(0, -1))
            (gradients,) = torch.autograd.grad(q_tot.sum(), leaf, create_graph=create_graph)
        return gradients

    def credit_stats(self, module, batch: Dict[str, Any], fwd_out: Dict[str, Any]
                     ) -> Dict[str, torch.Tensor]:
        """The normalised gradient entropy of the credit (GRE paper eq. 6-8): this batch's
        masked mean, and percentiles over every valid step trained on in this run."""
        entropy = fwd_out.get("credit_entropy")
        if entropy is None:
            entropy = normalized_entropy(self.credit_gradients(module, batch, fwd_out))
        entropy, mask = entropy.detach(), batch["mask"]
        self._credit_histogram.add(entropy[mask > 0])
        run = self._credit_histogram.percentiles(CREDIT_PERCENTILES)
        return {"credit_entropy_mean": masked_mean(entropy, mask),
                **{f"credit_entropy_run_p{round(q * 100):02d}": torch.tensor(value)
                   for q, value in run.items()}}

    def _check_value_range(self, config, q_tot: torch.Tensor, rewards: torch.Tensor,
                           bonus: Optional[torch.Tensor], mask: torch.Tensor) -> float:
        """Flags a Q_tot beyond the range the rewards seen so far allow (``core.value_range``):
        ValueRangeError with divergence_check="raise", a warning with "warn". Returns the
        batch's largest |Q_tot| over valid steps."""
        q_abs_max = float((q_tot.abs() * mask).max())
        self._value_range.update(rewards, bonus, mask, q_abs_max)
        if config.divergence_check == "off":
            return q_abs_max
        bootstrap = config.bootstrap_truncated_episodes
        bound = self._value_range.bound(config.gamma, bootstrap, config.divergence_margin)
        if q_abs_max <= bound or (config.divergence_check == "warn"
                                  and q_abs_max < 2.0 * self._last_divergence_warning):
            return q_abs_max
        message = self._divergence_message(config, q_abs_max, bound)
        if config.divergence_check == "raise":
            raise ValueRangeError(message)
        logger.warning(message)
        self._last_divergence_warning = q_abs_max
        return q_abs_max

    def _divergence_message(self, config, q_abs_max: float, bound: float) -> str:
        causes = []
        if config.bootstrap_truncated_episodes:
            causes.append(
                "bootstrap_truncated_episodes=True on an env whose episodes end at a fixed time "
                "limit that the agents can see (time in the observation, or counted by the GRU): "
                "each truncated episode's target reads the value of a final observation that no "
                "acting step ever has, so nothing trains that value and the net's extrapolation "
                "feeds back into every target; set bootstrap_truncated_episodes=False")
        causes.append(f"a learning rate too high for this env (lr={config.lr:g}; try a few times "
                      f"lower)")
        if not config.standardize_rewards:
            causes.append("large or badly scaled rewards (standardize_rewards=True rescales them)")
        return (
            f"{config.algo_class.__name__}: the values are diverging: the largest |Q_tot| of this "
            f"batch is {q_abs_max:.6g} at training iteration "
            f"{self._timesteps.get(TRAINING_ITERATION, '?')} (env step "
            f"{self._timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, '?')}), beyond {bound:.6g}, "
            f"the most the rewards trained on so far allow: "
            f"{self._value_range.describe(config.gamma, config.bootstrap_truncated_episodes, config.divergence_margin)}. "
            f"Likely causes: " + "; ".join(causes) + ". "
            + ("The update was not applied. Set divergence_check='warn' to train on regardless, "
               "or raise divergence_margin if the bound is too tight for this env."
               if config.divergence_check == "raise" else
               "Training goes on (divergence_check='warn'); this warning repeats whenever "
               "|Q_tot| doubles."))

    def _raise_if_not_finite(self, config, tensors: Dict[str, torch.Tensor], kind: str) -> None:
        """NonFiniteLossError naming the algorithm, the iteration and the first non-finite
        tensor, of the given kind (the Q-values, a loss term, a parameter, the gradient)."""
        for name, tensor in tensors.items():
            if not torch.isfinite(tensor).all():
                raise NonFiniteLossError(
                    f"{config.algo_class.__name__}: {kind} '{name}' is not finite (NaN or inf) at "
                    f"training iteration {self._timesteps.get(TRAINING_ITERATION, '?')}, env "
                    f"step {self._timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, '?')}; the update "
                    f"was not applied. Lower lr, check the env's rewards and observations for "
                    f"NaN/inf, or keep grad_clip set.")

    def apply_gradients(self, gradients_dict) -> None:
        """Sets the gradients and steps the optimizers, after one fused finiteness check.

        RLlib's version checks every tensor twice and zeroes non-finite gradients with a
        warning; here a non-finite gradient stops training with NonFiniteLossError.
        """
        grads = [grad for grad in gradients_dict.values() if grad is not None]
        if grads and not torch.stack(torch._foreach_norm(grads)).isfinite().all():
            self._raise_if_not_finite(self.config, {"gradient": torch.tensor(float("nan"))}, "the")
        for param_ref, grad in gradients_dict.items():
            self._params[param_ref].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                if optimizer_name not in self.SEPARATE_OPTIMIZERS:
                    self.get_optimizer(module_id, optimizer_name).step()

    # ---- around each gradient step -----------------------------------------
    def before_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        self._timesteps = timesteps

    def after_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        """Hard target copy every ``target_update_interval_episodes`` episodes (spec 0.3)."""
        super().after_gradient_based_update(timesteps=timesteps)
        episodes = timesteps.get(NUM_EPISODES_LIFETIME, 0)
        interval = self.config.target_update_interval_episodes
        if (episodes - self._last_target_update_episode) / interval >= 1.0:
            self.update_target_networks()
            self._last_target_update_episode = episodes

    def update_target_networks(self) -> None:
        for module_id, module in self.module._rl_modules.items():
            for main_net, target_net in module.unwrapped().get_target_network_pairs():
                update_target_network(main_net=main_net, target_net=target_net, tau=1.0)
            self.metrics.log_value((module_id, "num_target_updates"), 1, reduce="lifetime_sum")

    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        state["last_target_update_episode"] = self._last_target_update_episode
        state["reward_stats"] = self._reward_stats.get_state()
        state["credit_histogram"] = self._credit_histogram.get_state()
        state["value_range"] = self._value_range.get_state()
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if "last_target_update_episode" in state:
            self._last_target_update_episode = state["last_target_update_episode"]
        if "reward_stats" in state:
            self._reward_stats.set_state(state["reward_stats"])
        if "credit_histogram" in state:
            self._credit_histogram.set_state(state["credit_histogram"])
        if "value_range" in state:
            self._value_range.set_state(state["value_range"])

