"""A compact PPO (Schulman et al. 2017) over :class:`~circuitscope.toy.maze.env.MazeEnv`, resumable bit for bit.

Each iteration resets ``ppo_envs`` environments on training levels, steps each ``ppo_horizon``
times with actions sampled from the policy (an episode that ends is replaced by a new level),
computes generalised advantage estimates (the value of the last observation bootstraps the
unfinished episodes) and takes ``ppo_epochs`` passes of clipped-objective updates over shuffled
minibatches. Everything random in iteration ``i`` (levels, actions, minibatches) comes from a
generator seeded by (seed, i), and every iteration starts from fresh environments, so an iteration is
a pure function of the weights and ``i``: a run resumed from a checkpoint (the files and identity
check of :mod:`circuitscope.toy.checkpoint`) ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitscope.progress import OnProgress
from circuitscope.toy.checkpoint import check_run_folder, resume_checkpoint, save_checkpoint
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.levels import level_seed
from circuitscope.toy.maze.policy import MazePolicy
from circuitscope.toy.threads import torch_threads
from circuitscope.toy.trainer import TrainConfig, TrainResult

if TYPE_CHECKING:
    from circuitscope.toy.maze.env import MazeEnv

__all__ = ["Rollout", "collect_rollout", "train_ppo"]

SUCCESS = "episode_success"
"""The curve, one entry per iteration: the share of the iteration's finished episodes that reached the cheese."""


@dataclass(frozen=True)
class Rollout:
    """One iteration's transitions, flattened over (step, environment)."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    success: float
    """Share of the episodes that ended in this rollout (cheese or time limit) that reached the cheese."""


def _gae(
    rewards: torch.Tensor, values: torch.Tensor, done: torch.Tensor, last: torch.Tensor, config: MazeConfig
) -> torch.Tensor:
    """Advantages [step, env]; ``done`` ends an episode (no bootstrap across it)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last)
    for t in reversed(range(len(rewards))):
        following = last if t == len(rewards) - 1 else values[t + 1]
        keep = 1.0 - done[t]
        delta = rewards[t] + config.gamma * following * keep - values[t]
        running = delta + config.gamma * config.gae_lambda * keep * running
        advantages[t] = running
    return advantages


def _maze_env() -> type[MazeEnv]:
    """The gymnasium environment class, imported here: PPO is the one part of the lab that needs gymnasium."""
    try:
        from circuitscope.toy.maze.env import MazeEnv
    except ModuleNotFoundError as err:
        if err.name != "gymnasium":
            raise
        raise LabConfigError(
            "PPO steps a gymnasium environment, and gymnasium is not installed: pip install 'circuitscope[labs]' "
            "(or train by imitation, the default)"
        ) from err
    return MazeEnv


def collect_rollout(policy: MazePolicy, config: MazeConfig, generator: torch.Generator) -> Rollout:
    """Step ``ppo_envs`` fresh environments ``ppo_horizon`` times."""
    levels, env_class = config.train_levels(), _maze_env()

    def new_level() -> int:
        return level_seed(config.seed, int(torch.randint(config.n_train_mazes, (1,), generator=generator)))

    envs = [env_class(levels, config.max_episode_steps) for _ in range(config.ppo_envs)]
    obs = torch.stack([torch.from_numpy(env.reset(seed=new_level())[0]) for env in envs])
    frames, actions, log_probs, values, rewards, done = [], [], [], [], [], []
    ended = succeeded = 0
    with torch.no_grad():
        for _ in range(config.ppo_horizon):
            logits, value = policy.policy_and_value(obs)
            log_p = torch.log_softmax(logits, -1)
            action = torch.multinomial(log_p.exp(), 1, generator=generator)[:, 0]
            frames.append(obs)
            actions.append(action)
            log_probs.append(log_p.gather(1, action[:, None])[:, 0])
            values.append(value)
            step_reward, step_done, next_obs = [], [], []
            for env, a in zip(envs, action.tolist(), strict=True):
                o, reward, terminated, truncated, _ = env.step(a)
                if terminated or truncated:
                    ended += 1
                    succeeded += int(terminated)
                    o = env.reset(seed=new_level())[0]
                step_reward.append(reward)
                step_done.append(float(terminated or truncated))
                next_obs.append(torch.from_numpy(o))
            rewards.append(torch.tensor(step_reward))
            done.append(torch.tensor(step_done))
            obs = torch.stack(next_obs)
        last = policy.policy_and_value(obs)[1]
    value_t, reward_t, done_t = torch.stack(values), torch.stack(rewards), torch.stack(done)
    advantages = _gae(reward_t, value_t, done_t, last, config)
    return Rollout(
        obs=torch.cat(frames),
        actions=torch.cat(actions),
        log_probs=torch.cat(log_probs),
        advantages=advantages.reshape(-1),
        returns=(advantages + value_t).reshape(-1),
        success=succeeded / ended if ended else 0.0,
    )


def _update(
    policy: MazePolicy,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: MazeConfig,
    generator: torch.Generator,
) -> float:
    """The clipped-objective epochs; returns the mean loss of the last epoch."""
    adv = rollout.advantages
    adv = (adv - adv.mean()) / adv.std().clamp_min(1e-8)
    n = len(adv)
    last_epoch: list[float] = []
    for _ in range(config.ppo_epochs):
        last_epoch = []
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.ppo_minibatch):
            idx = order[start : start + config.ppo_minibatch]
            logits, value = policy.policy_and_value(rollout.obs[idx])
            log_p = torch.log_softmax(logits, -1)
            ratio = (log_p.gather(1, rollout.actions[idx, None])[:, 0] - rollout.log_probs[idx]).exp()
            clipped = ratio.clamp(1 - config.ppo_clip, 1 + config.ppo_clip)
            policy_loss = -torch.minimum(ratio * adv[idx], clipped * adv[idx]).mean()
            value_loss = (value - rollout.returns[idx]).pow(2).mean()
            entropy = -(log_p.exp() * log_p).sum(-1).mean()
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
            last_epoch.append(float(loss.detach()))
    return sum(last_epoch) / len(last_epoch)


def train_ppo(
    config: MazeConfig, policy: MazePolicy, folder: Path, train_config: TrainConfig, on_progress: OnProgress | None
) -> TrainResult:
    """Train ``policy`` in place for ``config.steps`` iterations on ``train_config``'s learning-rate schedule and
    thread count, resuming from ``folder``. ``loss`` and the ``episode_success`` curve (the share of the
    iteration's finished episodes that reached the cheese) have one entry per iteration."""
    _maze_env()  # refused before any work without gymnasium
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    result = TrainResult(config=train_config, loss=[], metric_steps=[], metrics={SUCCESS: []})
    check_run_folder(folder, {"model": type(policy).__name__, "train": "ppo", "task": config.identity()})
    state = resume_checkpoint(folder, policy, optimizer, config.steps)
    start = 0
    if state is not None:
        start = result.resumed_from = int(state["step"])
        result.loss, result.metric_steps = list(state["loss"]), list(state["metric_steps"])
        result.metrics = {SUCCESS: list(state["metrics"][SUCCESS])}
    with torch_threads(train_config.threads or torch.get_num_threads()):
        try:
            policy.train()
            if on_progress is not None:
                on_progress("maze ppo", start, config.steps)
            for it in range(start, config.steps):
                for group in optimizer.param_groups:
                    group["lr"] = train_config.lr_at(it)
                generator = torch.Generator().manual_seed(config.seed * 1_000_003 + it)
                rollout = collect_rollout(policy, config, generator)
                result.loss.append(_update(policy, optimizer, rollout, config, generator))
                done = it + 1
                result.metric_steps.append(done)
                result.metrics[SUCCESS].append(rollout.success)
                if done % config.checkpoint_every == 0 or done == config.steps:
                    saved = {"loss": result.loss, "metric_steps": result.metric_steps, "metrics": result.metrics}
                    save_checkpoint(folder, done, policy, optimizer, saved)
                if on_progress is not None:
                    on_progress("maze ppo", done, config.steps)
        finally:
            policy.eval()
    return result
