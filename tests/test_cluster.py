"""Multi-node on one machine: ``ray.cluster_utils.Cluster`` starts a head and two worker
nodes here, each its own raylet and object store as on separate machines (what
``ray start --head`` and ``ray start --address=... --resources=...`` start). The EnvRunner is
forced onto a worker node by a custom resource that only worker nodes have; that node is
killed in the middle of a sample call, and RLlib restarts the runner on the other worker
node: through the Algorithm, and through Tune as the CLI's ``--address`` runs it.

These tests cannot share the session's local Ray (``ray_session``): the driver connects to
the cluster instead, and the session's Ray is started again afterwards as conftest started it.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import ray
import toy_envs
from conftest import TINY_SETTINGS, tiny_config
from ray import cloudpickle
from ray.cluster_utils import Cluster
from ray.experimental.internal_kv import _internal_kv_get
from ray.tune.registry import _global_registry, _make_key
from toy_envs import ToyEnv

from rllib_softqmix import register_team_env
from rllib_softqmix.experiment import build_experiment, run

RUNNER_NODE = "runner_node"  # the custom resource of the nodes that may host EnvRunners
BLOCKED = "blocked"  # a file in the env's log_dir: an env stopped for its node to be killed


class NodeLossToy(ToyEnv):
    """ToyEnv (episodes of 5 steps) that appends "b" to the file ``log_dir/NODE_ID`` when one
    of its episodes begins (its first step) and "f" when one finishes. Once per test (the
    file ``log_dir/blocked``, holding the node's id, records it), the env that is to take the
    third step of its node's ``block_at``-th episode stops there until its node is killed."""

    def __init__(self, log_dir, block_at, **options):
        super().__init__(**options)
        self.log_dir, self.block_at = log_dir, block_at

    def step(self, actions):
        node = ray.get_runtime_context().get_node_id()
        log, marker = (os.path.join(self.log_dir, name) for name in (node, BLOCKED))
        if self.t == 0:
            record(log, "b")
        if self.t == 2 and not os.path.exists(marker) and events(log).count("b") == self.block_at:
            record(marker + ".new", node)
            os.replace(marker + ".new", marker)  # whole, when the test sees it
            threading.Event().wait(60)  # ends early: the node's death ends this process
            raise RuntimeError("the node of the blocked env was not killed within 60 s")
        result = super().step(actions)
        if self.t == self.limit:
            record(log, "f")
        return result


def record(path, text):
    with open(path, "a") as file:
        file.write(text)


def events(path):
    return open(path).read() if os.path.exists(path) else ""


# EnvRunners unpickle the env class; they cannot import tests/.
cloudpickle.register_pickle_by_value(toy_envs)
cloudpickle.register_pickle_by_value(sys.modules[__name__])
register_team_env("node_loss_toy", NodeLossToy)


def shutdown_keeping_tune_registrations():
    """ray.shutdown(), queueing for the next ray.init what Tune's registry holds.

    Tune keeps registered envs and trainables in the running Ray's key-value store and
    writes, at ray.init, only those registered since the previous ray.init, so a later Ray
    would know none of them (remote runners could not build a test's env, Tune would not
    know "QMIX")."""
    if ray.is_initialized():
        registry = _global_registry
        for category, key in registry._registered:
            value = _internal_kv_get(_make_key(registry.prefix, category, key))
            if value is not None:
                registry._to_flush[(category, key)] = value
        ray.shutdown()


@pytest.fixture
def nodes():
    """A head node (no runner resource) and two worker nodes with one CPU and the runner
    resource each, the driver not yet connected. The session's Ray, if one runs, is shut
    down before and started again after, as conftest's ray_session started it."""
    session_cpus = ray.cluster_resources()["CPU"] if ray.is_initialized() else None
    shutdown_keeping_tune_registrations()
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, resources={RUNNER_NODE: 1})
        yield cluster
    finally:
        shutdown_keeping_tune_registrations()
        cluster.shutdown()
    if session_cpus is not None:
        ray.init(num_cpus=int(session_cpus), include_dashboard=False, log_to_driver=False)


@pytest.fixture
def cluster(nodes):
    """``nodes``, the driver connected to the head by its address."""
    ray.init(address=nodes.address, log_to_driver=False)
    return nodes


def runner_nodes(algo):
    return algo.env_runner_group.foreach_env_runner(
        lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False)


def kill_the_blocked_node(cluster, log_dir, running):
    """Waits until an env blocked (failing if ``running``, the run's future, ends first),
    then kills its node, all its processes at once (no goodbye to the head: like a machine
    that is lost); returns the node's id."""
    marker = log_dir / BLOCKED
    while not marker.exists():
        assert not running.done(), "the run ended before the env blocked"
        time.sleep(0.02)
    [node] = [node for node in cluster.worker_nodes if node.node_id == marker.read_text()]
    cluster.remove_node(node, allow_graceful=False)
    return node.node_id


def episode_accounting(log_dir, killed_node, stored):
    """(episodes the killed node's runner was playing when it died, episodes lost), from
    every node's log, ``stored`` episodes having reached the algorithm. The other runners
    (after a sample call) have no episode in flight, so all they finished must be stored."""
    logs = {path.name: path.read_text() for path in log_dir.iterdir() if path.name != BLOCKED}
    killed = logs.pop(killed_node)
    for node, log in logs.items():
        assert log.count("b") == log.count("f"), node
    return (killed.count("b") - killed.count("f"),
            killed.count("b") + sum(log.count("f") for log in logs.values()) - stored)


# Each sample call: 8 episodes of 5 steps on 4 envs in lockstep, i.e. two rounds of 4;
# an iteration (>= 64 env steps) is 2 calls. The env blocks in the 3rd call's 2nd round, so
# the runner has 4 finished episodes not yet returned and plays 4 when its node dies.
EPISODES_PER_CALL, ENVS, LIMIT = 8, 4, 5
SETTINGS = dict(episodes_per_train_step=EPISODES_PER_CALL, num_envs_per_env_runner=ENVS,
                num_env_runners=1, custom_resources_per_env_runner={RUNNER_NODE: 1},
                restart_failed_env_runners=True)


def node_loss_env_config(log_dir):
    log_dir.mkdir()
    return {"log_dir": str(log_dir), "block_at": 3 * EPISODES_PER_CALL}


def test_runners_of_a_killed_node_restart_on_another_and_the_run_goes_on(cluster, tmp_path):
    log_dir = tmp_path / "logs"
    config = tiny_config("QMIX", env="node_loss_toy", env_config=node_loss_env_config(log_dir))
    algo = config.update_from_dict(SETTINGS).build_algo()
    try:
        driver_node = ray.get_runtime_context().get_node_id()
        worker_nodes = {node.node_id for node in cluster.worker_nodes}
        [first_node] = runner_nodes(algo)
        assert first_node != driver_node and first_node in worker_nodes

        first = algo.train()
        assert first["env_runners"]["num_episodes_lifetime"] == 2 * EPISODES_PER_CALL
        assert first["num_gradient_steps_lifetime"] > 0

        # The next iteration's first sample call blocks; the runner's node is killed then.
        with ThreadPoolExecutor(1) as pool:
            training = pool.submit(algo.train)
            assert kill_the_blocked_node(cluster, log_dir, training) == first_node
            results = [first, training.result()]
        # Once the head finds the node dead (missed health checks: ~15 s by Ray's defaults),
        # Ray restarts the runner's actor on the node with the resource left; until RLlib's
        # ping (at the start of each training step) reaches it, the local runner samples.
        deadline = time.monotonic() + 60
        while results[-1]["fault_tolerance"]["num_remote_worker_restarts"] == 0:
            assert time.monotonic() < deadline, "the runner was not restarted within 60 s"
            results.append(algo.train())
        results.append(algo.train())
        assert results[-1]["fault_tolerance"]["num_remote_worker_restarts"] == 1
        assert algo.env_runner_group.num_healthy_remote_workers() == 1
        [second_node] = runner_nodes(algo)
        assert second_node in worker_nodes - {first_node}
        assert events(log_dir / second_node).count("f") > 0

        # Counters grow in every iteration, also in the one that lost the node.
        lifetime = [result["env_runners"]["num_episodes_lifetime"] for result in results]
        assert all(earlier < later for earlier, later in zip(lifetime, lifetime[1:]))
        assert lifetime[-1] == algo._episodes
        assert results[-1]["num_env_steps_sampled_lifetime"] == LIMIT * algo._episodes
        # Lost: what the killed node's runner had in flight, no more.
        assert episode_accounting(log_dir, first_node, algo._episodes) == (ENVS, EPISODES_PER_CALL)
        batch = algo.replay_buffer.gather(np.arange(len(algo.replay_buffer)))
        assert (batch["mask"].sum(1) == LIMIT).all()  # only whole episodes were stored
    finally:
        algo.stop()


@pytest.mark.slow  # ~35 s: Tune's start, and the ~15 s until the head finds the node dead
def test_the_clis_run_on_a_cluster_survives_the_loss_of_its_runners_node(nodes, tmp_path):
    """What ``python -m rllib_softqmix train FILE.yaml --address ...`` runs: Tune's trial,
    its runner in the trial's placement group on a worker node; that node is killed."""
    log_dir = tmp_path / "logs"
    experiment = build_experiment({
        "algorithm": "QMIX", "env": "node_loss_toy", "env_config": node_loss_env_config(log_dir),
        "config": {**TINY_SETTINGS, **SETTINGS, "min_sample_timesteps_per_iteration": 64,
                   "seed": 0},
        "stop": {"num_env_steps_sampled_lifetime": 1000},
        "run": {"name": "cluster", "storage_path": str(tmp_path), "verbose": 0}})
    with ThreadPoolExecutor(1) as pool:
        fitting = pool.submit(run, experiment, address=nodes.address)
        killed_node = kill_the_blocked_node(nodes, log_dir, fitting)
        results = fitting.result()
    assert not results.errors
    metrics = results[0].metrics
    episodes = metrics["env_runners"]["num_episodes_lifetime"]
    assert metrics["fault_tolerance"]["num_remote_worker_restarts"] == 1
    assert metrics["num_env_steps_sampled_lifetime"] == LIMIT * episodes >= 1000
    assert episode_accounting(log_dir, killed_node, episodes) == (ENVS, EPISODES_PER_CALL)
