"""PPO for RLHF: the KL-penalised reward, GAE, the clipped policy and value losses, PPO-ptx.

The loop, checkpoints and resume are `rlhf_lab.rl.trainer`'s; PPO (InstructGPT §3.5; Ziegler et al.
2019; Huang et al. 2024) supplies what it does with a batch:

- rollout: eq. (1)-(2) of `rlhf_lab.rl.ppo`: per-token rewards r_t = -beta kl_t + [t = last]
  r_phi(x, y), GAE advantages (whitened) and returns from the value function's V(s_t);
- minibatches: ``ppo_epochs`` passes, each a fresh permutation of the episodes, optionally grouped
  by response length;
- loss: the clipped surrogate (Schulman et al. 2017, eq. 7) plus vf_coef times the clipped value
  loss, minus an entropy bonus, plus PPO-ptx's gamma times the pre-training loss (InstructGPT eq. 2).

The value function is a scalar head on the policy's last hidden state by default
("shared"): one forward gives both the logits and the values, which halves the cost on a
CPU, at the price of value-loss gradients reaching the policy's trunk (vf_coef = 0.1 keeps
that small). ``value_model="separate"`` trains a critic of its own, initialised from the
reward model as Huang et al. do, with no interference and twice the forwards. beta is fixed or
follows Ziegler et al.'s adaptive controller (§2.2).
"""
from __future__ import annotations

import copy

import torch

from rlhf_lab.rl.ppo import (AdaptiveKLController, FixedKLController, PPOConfig, explained_variance, gae,
                             masked_mean, per_token_rewards, policy_loss, value_loss, whiten)
from rlhf_lab.rl.ptx import pretraining_batches, ptx_loss
from rlhf_lab.rl.rollout import PPORollout, RewardFn, ValueModel, value_head
from rlhf_lab.rl.trainer import RLTrainer
from rlhf_lab.world.reviews import Prompt


class PPOTrainer(RLTrainer):
    """PPO with a per-token KL penalty against a frozen reference.

        trainer = PPOTrainer(PPOConfig.tiny(), prompts)           # loads cfg.model and cfg.reward_model
        history = trainer.train(out_dir=runs_dir("ppo"))          # checkpoints there
        trainer = PPOTrainer.resume(runs_dir("ppo"))              # continues where it stopped

    ``policy``, ``tokenizer``, ``reference`` and ``reward_fn`` may be passed in (a notebook reuses
    loaded models); ``reward_fn(prompt_texts, completions) -> (B,)`` replaces the reward model, for
    example with a gold judge. ``reward_model`` is needed with ``value_model="separate"``.
    """

    config_cls = PPOConfig
    algo = "ppo"
    remedy = "lower lr (={lr}) or clip the score (score_clip)"
    loss_terms = (("pg", "policy loss"), ("vf", "value loss"), ("ptx", "pre-training loss"))

    def __init__(self, cfg: PPOConfig, prompts, policy=None, tokenizer=None, reference=None,
                 reward_fn: RewardFn | None = None, reward_model=None):
        super().__init__(cfg, prompts, policy, tokenizer, reference, reward_fn, reward_model)
        self.ptx = pretraining_batches(cfg, self.tokenizer, self.policy, self.device)   # PPO-ptx, or None

    def build_value_function(self) -> None:
        """V(s_t): a head on the policy ("shared", zero at the start) or a critic initialised from the
        reward model's backbone ("separate"; Huang et al. 2024)."""
        if self.cfg.value_model == "shared":
            self.head = value_head(self.policy.config.hidden_size).to(self.device)
            return
        if self._reward_model is None:
            raise ValueError("value_model='separate' initialises the critic from the reward model: pass reward_model")
        self.critic = ValueModel(copy.deepcopy(self._reward_model.backbone)).to(self.device).eval()
        self.critic.requires_grad_(True)

    def kl_controller(self):
        cfg = self.cfg
        return (AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.horizon) if cfg.adaptive_kl
                else FixedKLController(cfg.kl_coef))

    @property
    def kl_coef(self) -> float:
        """beta of eq. (1) for the next batch (the adaptive controller moves it after each iteration)."""
        return self.kl_ctl.value

    def extra_state(self) -> dict:
        # PPO-ptx's document draws continue where they stopped
        return {"ptx_generator": self.ptx.generator.get_state()} if self.ptx is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.ptx is not None and "ptx_generator" in state:
            self.ptx.generator.set_state(state["ptx_generator"])

    @torch.no_grad()
    def rollout(self, prompts: list[Prompt]) -> PPORollout:
        """Generate and score one batch of episodes; eq. (1) rewards and eq. (2) advantages."""
        cfg = self.cfg
        fields, values = self.generate_and_score(prompts)
        mask = fields["mask"]
        if cfg.score_clip is not None:
            fields["scores"] = fields["scores"].clamp(-cfg.score_clip, cfg.score_clip)
        rewards, non_score = per_token_rewards(fields["scores"], fields["kl"], mask, self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)
        return PPORollout(**fields, values=values, rewards=rewards, non_score_rewards=non_score,
                          advantages=advantages, returns=returns)

    def pass_minibatches(self, r: PPORollout) -> list[list[int]]:
        """One pass: a fresh permutation cut into minibatches; with ``group_by_length`` the permutation is
        sorted by response length first (ties stay shuffled) and the minibatches are then shuffled, so a
        minibatch holds episodes of similar length and is cut narrower (`rollout.trim_minibatch`)."""
        cfg, m = self.cfg, self.cfg.mini_batch_size
        order = torch.randperm(cfg.batch_size, generator=self.generator).tolist()
        if not cfg.group_by_length:
            return [order[i:i + m] for i in range(0, len(order), m)]
        order.sort(key=lambda i: r.response_lengths[i])          # stable: equal lengths stay shuffled
        chunks = [order[i:i + m] for i in range(0, len(order), m)]
        return [chunks[j] for j in torch.randperm(len(chunks), generator=self.generator).tolist()]

    def minibatch_loss(self, r: PPORollout, host_rows: list[int], mb: torch.Tensor):
        """pg + vf_coef vf [- ent_coef H] [+ ptx_coef ptx] of one minibatch, and its statistics (0-d tensors)."""
        cfg = self.cfg
        logprobs, values, ent, cols = self._learn_forward_rows(r, host_rows, mb, cfg.ent_coef > 0)
        m = r.mask[mb][:, cols]
        pg, pg_stats = policy_loss(logprobs, r.logprobs[mb][:, cols], r.advantages[mb][:, cols], m, cfg.cliprange)
        vf, vf_stats = value_loss(values, r.values[mb][:, cols], r.returns[mb][:, cols], m, cfg.cliprange_value)
        loss = pg + cfg.vf_coef * vf
        if cfg.ent_coef > 0:
            loss = loss - cfg.ent_coef * masked_mean(ent, m)
        stats = {"pg": pg, "vf": vf, "vf_clipfrac": vf_stats["clipfrac"], **pg_stats}
        if self.ptx is not None:   # PPO-ptx: + gamma * (-log-likelihood of pre-training text)
            with self._autocast():
                stats["ptx"] = ptx_loss(self.policy, *self.ptx.next())
            loss = loss + cfg.ptx_coef * stats["ptx"]
        return loss, stats

    def metrics(self, r: PPORollout, learned: dict) -> dict[str, float]:
        """PPO's columns of the history: the total reward, the value function's loss and fit, PPO-ptx's loss."""
        row = {"objective/rlhf_reward": (r.scores + r.non_score_rewards.sum(-1)).mean().item(),
               "loss/value_avg": learned["vf"], "val/clipfrac_avg": learned["vf_clipfrac"],
               "val/explained_variance": explained_variance(r.values, r.returns, r.mask)}
        if "ptx" in learned:   # PPO-ptx: the pre-training documents' loss (nats per token)
            row["loss/ptx_avg"] = learned["ptx"]
        return row
