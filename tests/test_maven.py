"""MAVEN: the per-episode latent z, z conditioning, the MI loss, the z-policy, config."""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from rllib_softqmix import ConfigError, MAVENConfig, TeamPolicy
from rllib_softqmix.maven.networks import ZPolicy


def config(**training):
    return (MAVENConfig().environment("m_step_matrix", env_config={"m": 4})
            .training(**{"train_batch_size_episodes": 8, "replay_buffer_capacity": 64, "noise_dim": 4,
                         **training})
            .reporting(min_sample_timesteps_per_iteration=100).debugging(seed=0))


def z_index(episode):
    return int(episode.extras["z"].argmax())


def test_z_is_fixed_per_stored_episode_and_varies_across_episodes(ray_session):
    algo = config().build_algo()
    algo.train()
    batch = algo.replay_buffer.gather(np.arange(len(algo.replay_buffer)))
    z = batch["z"]
    assert z.shape == (len(algo.replay_buffer), 4)
    assert np.allclose(z.sum(-1), 1.0)                     # one-hot, one per episode
    assert len({tuple(row) for row in z}) == 4             # uniform draws cover all z
    runner = algo.env_runner
    counts = np.bincount([z_index(e) for e in runner.sample(num_episodes=400)], minlength=4)
    assert counts.min() > 60                               # ~100 each under uniform sampling
    # Within an episode the module carries z unchanged from step to step.
    module = runner.module["team"].unwrapped()
    state = {k: v.unsqueeze(0).repeat(3, 1) if v.dim() == 1 else v.unsqueeze(0).repeat(3, 1, 1)
             for k, v in module.get_initial_state().items()}
    obs = {key: torch.zeros(3, *space.shape) for key, space in module.observation_space.spaces.items()}
    obs["action_mask"] += 1
    drawn = None
    for _ in range(5):
        out = module.forward_exploration({Columns.OBS: obs, Columns.STATE_IN: state})
        state = out[Columns.STATE_OUT]
        drawn = state["z"] if drawn is None else drawn
        assert torch.equal(state["z"], drawn)
    algo.stop()


def test_remote_runners_evaluation_and_team_policy_hold_one_z_per_episode(ray_session, tmp_path):
    algo = (config(z_policy="learned").env_runners(num_env_runners=1)
            .evaluation(evaluation_interval=1, evaluation_duration=4, evaluation_num_env_runners=1)
            .build_algo())
    result = algo.train()
    assert result["evaluation"]["env_runners"]["num_episodes"] >= 4
    remote = algo.env_runner_group.foreach_env_runner(
        lambda runner: [(e.extras["z"].tolist(), len(e)) for e in runner.sample(num_episodes=6)],
        local_env_runner=False)[0]
    assert all(sum(z) == 1.0 for z, _ in remote)
    evaluation = algo.eval_env_runner_group.foreach_env_runner(
        lambda runner: [e.extras["z"].tolist() for e in runner.sample(num_episodes=6, explore=False)],
        local_env_runner=False)[0]
    assert all(sum(z) == 1.0 for z in evaluation)
    path = algo.save(str(tmp_path / "ckpt")).checkpoint.path
    algo.stop()

    policy = TeamPolicy.from_checkpoint(path)
    from rllib_softqmix import make_team_env
    env = make_team_env("m_step_matrix", {"m": 4})
    seen = set()
    for episode in range(12):
        obs, _ = env.reset(seed=episode)
        policy.reset()
        zs, done = [], False
        while not done:
            policy.act(obs["team"])
            zs.append(tuple(policy._state["z"][0].tolist()))
            obs, _, terminated, truncated, _ = env.step({"team": policy.act(obs["team"])})
            done = terminated["team"] or truncated["team"]
        assert len(set(zs)) == 1 and sum(zs[0]) == 1.0
        seen.add(zs[0])
    assert len(seen) > 1  # drawn again at every reset


def test_agent_q_head_and_mixer_take_z(ray_session):
    algo = config().build_algo()
    algo.train()
    module = algo.learner_group._learner.module["team"].unwrapped()
    batch = {k: torch.from_numpy(v) for k, v in algo.replay_buffer.sample(4, np.random.default_rng(0)).items()}
    other = dict(batch)
    other["z"] = torch.roll(batch["z"], 1, dims=-1)
    q, q_other = module.forward_train(batch)["q"], module.forward_train(other)["q"]
    assert not torch.allclose(q, q_other)
    chosen = q[:, :-1].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1).detach()
    assert not torch.allclose(module.mix(module.mixer, chosen, batch, slice(0, -1)),
                              module.mix(module.mixer, chosen, other, slice(0, -1)))
    algo.stop()


@pytest.mark.parametrize("rnn_discrim", [False, True])
def test_discriminator_loss_falls_when_behaviour_depends_on_z(ray_session, rnn_discrim):
    # Episodes whose first action reveals z: the MI loss must learn to read it.
    algo = config(rnn_discrim=rnn_discrim, noise_dim=2, mi_loss=1.0).build_algo()
    algo.train()
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    rng = np.random.default_rng(0)
    sampled = algo.replay_buffer.sample(8, rng)
    z = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    sampled["z"] = z
    batch = {k: torch.from_numpy(v) for k, v in sampled.items()}
    batch["state"] = batch["state"].clone()
    batch["state"][:, :, 0] = torch.from_numpy(z[:, :1]).expand(-1, batch["state"].shape[1])
    optimizer = learner.get_optimizer("team")
    losses = []
    for _ in range(150):
        fwd_out = dict(module.forward_train(batch))
        loss = learner.extra_losses(module, algo.config, batch, fwd_out, None, None)["mi_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.5 and losses[-1] < 0.1 * losses[0]
    algo.stop()


def test_mi_loss_reaches_the_agent_network(ray_session):
    algo = config().build_algo()
    algo.train()
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    batch = {k: torch.from_numpy(v) for k, v in algo.replay_buffer.sample(4, np.random.default_rng(0)).items()}
    loss = learner.extra_losses(module, algo.config, batch, dict(module.forward_train(batch)), None, None)["mi_loss"]
    module.zero_grad(set_to_none=True)
    loss.backward()
    reached = {name.split(".")[0] for name, p in module.named_parameters() if p.grad is not None}
    assert {"agent", "discriminator"} <= reached and "z_policy" not in reached and "mixer" not in reached
    algo.stop()


def test_reinforce_raises_the_probability_of_the_better_z(ray_session):
    algo = config(z_policy="learned", entropy_scaling=0.001).build_algo()
    learner = algo.learner_group._learner
    module = learner.module["team"].unwrapped()
    state0 = torch.zeros(module.state_dim)
    before = module.z_policy(state0).exp()
    states = np.zeros((100, 64, module.state_dim), np.float32)  # 100 steps, as the paper run
    z = np.tile(np.arange(4), (100, 16))
    returns = np.where(z == 2, 10.0, 1.0)  # z = 2 earns more
    learner.update_z_policy(states, z, returns, entropy_scaling=0.001)
    after = module.z_policy(state0).exp()
    assert after[2] > before[2] + 0.2
    assert after[2] == after.max()
    algo.stop()


def test_z_policy_keeps_entropy_with_an_entropy_bonus():
    torch.manual_seed(0)
    policy = ZPolicy(3, 4)
    optimizer = torch.optim.Adam(policy.parameters(), lr=5e-4)
    states = torch.zeros(64, 3)
    for _ in range(300):  # equal returns: only the entropy term pushes
        z = torch.multinomial(policy(states).exp(), 1).squeeze(-1)
        log_pi = policy(states).gather(-1, z.unsqueeze(-1)).squeeze(-1)
        loss = -(torch.ones(64) * log_pi).sum() + 0.5 * log_pi.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probs = policy(states[:1]).exp()
    assert -(probs * probs.log()).sum() > 1.0  # ln 4 = 1.39 is uniform


@pytest.mark.parametrize("training, key", [
    ({"noise_dim": 0}, "noise_dim"), ({"mi_loss": -1.0}, "mi_loss"),
    ({"entropy_scaling": -0.1}, "entropy_scaling"), ({"bandit_iters": 0}, "bandit_iters"),
    ({"bandit_batch": 0}, "bandit_batch"), ({"bandit_buffer": 0}, "bandit_buffer"),
    ({"z_policy": "bandit"}, "z_policy"), ({"test_z": "argmax"}, "test_z"),
    ({"discrim_layers": 0}, "discrim_layers"), ({"mi_scaler": -1.0}, "mi_scaler"),
])
def test_bad_maven_settings(training, key):
    with pytest.raises(ConfigError, match=key):
        MAVENConfig().training(**training)


def test_mi_intrinsic_needs_a_per_step_discriminator():
    with pytest.raises(ConfigError, match="mi_intrinsic"):
        MAVENConfig().environment("m_step_matrix").training(mi_intrinsic=True, rnn_discrim=True).validate()
