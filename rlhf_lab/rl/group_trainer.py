"""RLOO, GRPO and Dr. GRPO: the RL loop without a critic, K samples per prompt (`rlhf_lab.rl.group_rl`).

    trainer = GroupTrainer(GroupConfig.tiny("grpo"), prompts)    # loads cfg.model and cfg.reward_model
    history = trainer.train(out_dir=runs_dir("grpo"))             # checkpoints there
    trainer = GroupTrainer.resume(runs_dir("grpo"))               # continues where it stopped

The loop is `rlhf_lab.rl.trainer`'s, as PPO's is; this trainer supplies the rest: an iteration
draws ``batch_size / num_generations`` prompts and samples each ``num_generations`` times (K); the
rollout turns the (prompts x K) rewards into group-relative advantages, one per response (eqs. 1-3
of `rlhf_lab.rl.group_rl`), instead of a value function and GAE; the minibatches keep each group
together; the loss is the clipped surrogate aggregated by ``loss_type`` (eq. 4), with the KL in the
reward (RLOO's and PPO's way, before the advantages) or in the loss (GRPO's). Checkpoints hold no
value.safetensors; the history's metric names are PPO's (TRL's), plus the groups' reward spread.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_lab.config import ConfigError, validate_config
from rlhf_lab.rl.group_rl import LOSS_TYPES, group_advantages, group_loss
from rlhf_lab.rl.ppo import KL_ESTIMATORS, FixedKLController
from rlhf_lab.rl.rollout import GroupRollout
from rlhf_lab.rl.trainer import RLTrainer

ALGOS = ("rloo", "grpo")


@dataclass
class GroupConfig:
    """Every coefficient of a critic-free run. Names are TRL's GRPOConfig/RLOOConfig's where they exist."""

    algo: str = "grpo"
    """"rloo": leave-one-out baseline (Ahmadian et al. 2024); "grpo": group mean, and with scale_rewards
    the group std (Shao et al. 2024). Dr. GRPO is "grpo" with scale_rewards=False, loss_type="dr_grpo"."""
    model: str = "tiny"
    """The SFT model: the policy starts from it and the frozen reference is a copy of it."""
    reward_model: str = "tiny-rm"
    """The reward model r_phi: "tiny-rm" (shipped), a folder (one reward model, or an ensemble's:
    notebook 10), or "verifier" (notebook 09's checkable task: the
    specification's 0/1 verdict, `rlhf_lab.world.specs.SpecReward`)."""
    iterations: int = 20
    """Iterations: each samples ``batch_size`` episodes and updates the policy on them."""
    batch_size: int = 32
    """Episodes per iteration: batch_size / num_generations prompts, each sampled num_generations times."""
    num_generations: int = 4
    """K: completions per prompt, the group whose rewards are each other's baseline."""
    mini_batch_size: int = 16
    """Episodes per gradient step (a multiple of num_generations keeps groups together)."""
    num_iterations: int = 4
    """Passes over each batch (TRL's num_iterations, PPO's ppo_epochs; 1 makes every ratio 1)."""
    lr: float = 1e-4
    """Adam learning rate (PPOConfig's: 1e-4 for the embedded model, 1.41e-5 for GPT-2)."""
    max_grad_norm: float = 1.0
    """Gradient clipping of the whole update."""
    max_new_tokens: int = 24
    """Token budget of a response (TRL's max_completion_length)."""
    temperature: float = 0.7
    """Sampling temperature; every log-prob of the run divides the logits by the same T."""
    unfinished_score: float | None = -1.0
    """Score of a response with no EOS within the budget (None: r_phi's score)."""
    beta: float = 0.05
    """KL coefficient (TRL's beta; PPO's kl_coef)."""
    kl_in: str = "reward"
    """"reward": the sequence's KL is subtracted from its score before the advantages (PPO, RLOO);
    "loss": beta x per-token KL is added to the loss (GRPO)."""
    kl_estimator: str = "k1"
    """"k1", "k2" or "k3" (Schulman 2020); GRPO's KL in the loss uses k3."""
    epsilon: float = 0.2
    """Clip range of the surrogate (TRL's epsilon)."""
    scale_rewards: bool = True
    """GRPO only: divide each group's centred rewards by its std (False: Dr. GRPO's advantages)."""
    loss_type: str = "grpo"
    """Token aggregation: "grpo" (per-sequence mean, then mean), "dapo" (mean over all tokens), "dr_grpo"
    (sum / (responses x max_new_tokens))."""
    padding_free: bool = True
    """Packed rows without padding, each group's prompt once (`rollout.pack_episodes`); False: padded rows."""
    bf16: bool = True
    """On CUDA, run forwards under bf16 autocast (log-probs and losses stay in float32)."""
    compile: str = "off"
    """"generate": static KV cache and a torch.compiled decode step. For GPUs."""
    checkpoint_every: int = 5
    """Iterations between checkpoints when the run has an output folder (0: only at the end)."""
    seed: int = 0
    """Seeds prompt order, sampling and the minibatch order."""
    device: str | None = None
    """"cpu", "cuda", or None for get_device()."""

    def __post_init__(self):
        validate_config(self, {
            "algo": ALGOS, "model": "name", "reward_model": "name", "iterations": ">=1", "batch_size": ">=1",
            "num_generations": ">=1", "mini_batch_size": ">=1", "num_iterations": ">=1", "lr": ">0",
            "max_grad_norm": ">0", "max_new_tokens": ">=1", "temperature": ">0", "beta": ">=0",
            "kl_in": ("reward", "loss"), "kl_estimator": KL_ESTIMATORS, "epsilon": ">0", "loss_type": LOSS_TYPES,
            "compile": ("off", "generate"), "checkpoint_every": ">=0", "seed": ">=0"})
        if self.num_generations < 2:
            raise ConfigError(f"GroupConfig.num_generations must be at least 2 (a group needs a baseline), "
                              f"got {self.num_generations}")
        for name in ("batch_size", "mini_batch_size"):
            if getattr(self, name) % self.num_generations:
                raise ConfigError(f"GroupConfig.{name} ({getattr(self, name)}) must be a multiple of "
                                  f"num_generations ({self.num_generations})")
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(f"GroupConfig.batch_size ({self.batch_size}) must be a multiple of mini_batch_size "
                              f"({self.mini_batch_size})")

    @property
    def passes(self) -> int:
        """Passes over each batch, the name every RL config answers to (`rlhf_lab.rl.trainer`)."""
        return self.num_iterations

    @property
    def advantage(self) -> str:
        """The estimator of `group_rl.group_advantages` this config asks for."""
        return "rloo" if self.algo == "rloo" else ("grpo" if self.scale_rewards else "dr_grpo")

    @classmethod
    def tiny(cls, algo: str = "grpo") -> "GroupConfig":
        """The embedded model on 2 CPU cores with notebook 05's budget (20 iterations of 32 episodes,
        48 tokens): RLOO with the KL in the reward (k1, as PPO), GRPO with the KL in the loss (k3)."""
        return cls._preset(algo, max_new_tokens=48)

    @classmethod
    def gpu(cls, algo: str = "grpo") -> "GroupConfig":
        """GPT-2 (124M) on one GPU: PPOConfig.gpu()'s lr (1.41e-5), batch and budget, K = 4."""
        return cls._preset(algo, model="gpt2", reward_model="runs/reward_model", iterations=100, batch_size=128,
                           mini_batch_size=32, lr=1.41e-5, max_new_tokens=48)

    @classmethod
    def _preset(cls, algo: str, **sizes) -> "GroupConfig":
        if algo == "dr_grpo":
            return cls(algo="grpo", scale_rewards=False, loss_type="dr_grpo", kl_in="loss", kl_estimator="k3",
                       **sizes)
        if algo == "rloo":
            return cls(algo="rloo", kl_in="reward", kl_estimator="k1", loss_type="dapo", **sizes)
        if algo == "grpo":
            return cls(algo="grpo", kl_in="loss", kl_estimator="k3", **sizes)
        raise ConfigError(f"algo must be one of rloo, grpo, dr_grpo, got {algo!r}")


class GroupTrainer(RLTrainer):
    """RLOO / GRPO / Dr. GRPO: the loop of `rlhf_lab.rl.trainer` without a value function (see the module doc)."""

    config_cls = GroupConfig

    @property
    def algo(self) -> str:
        return self.cfg.algo

    @property
    def samples_per_prompt(self) -> int:
        return self.cfg.num_generations

    def kl_controller(self) -> FixedKLController:
        # beta penalises the reward only when the KL is there; in the loss it enters `group_loss` instead
        return FixedKLController(self.cfg.beta if self.cfg.kl_in == "reward" else 0.0)

    @property
    def kl_coef(self) -> float:
        return self.cfg.beta

    @torch.no_grad()
    def rollout(self, prompts) -> GroupRollout:
        """K responses per prompt (``prompts`` holds each prompt K times in a row), their rewards
        with the KL in the reward or not, and one group-relative advantage per response."""
        cfg = self.cfg
        fields, _ = self.generate_and_score(prompts)
        non_score = -self.kl_ctl.value * fields["kl"]            # 0 when the KL is in the loss
        total = fields["scores"] + non_score.sum(-1)
        advantages = group_advantages(total.view(-1, cfg.num_generations), cfg.advantage).view(-1)
        return GroupRollout(**fields, non_score_rewards=non_score, advantages=advantages)

    def pass_minibatches(self, r: GroupRollout) -> list[list[int]]:
        """One pass: a fresh order of whole groups cut into minibatches (a group's K episodes stay together)."""
        cfg, k = self.cfg, self.cfg.num_generations
        n_groups, per = cfg.batch_size // k, cfg.mini_batch_size // k
        groups = torch.randperm(n_groups, generator=self.generator).tolist()
        return [[g * k + j for g in groups[i:i + per] for j in range(k)] for i in range(0, n_groups, per)]

    def minibatch_loss(self, r: GroupRollout, host_rows: list[int], mb: torch.Tensor):
        """The clipped surrogate of `group_rl.group_loss` (eq. 4), with beta x KL when the KL is in the loss."""
        cfg = self.cfg
        in_loss = cfg.kl_in == "loss" and cfg.beta > 0
        logprobs, _, _, cols = self._learn_forward_rows(r, host_rows, mb, False)
        loss, stats = group_loss(logprobs, r.logprobs[mb][:, cols], r.ref_logprobs[mb][:, cols] if in_loss else None,
                                 r.advantages[mb], r.mask[mb][:, cols], cfg.epsilon, cfg.beta if in_loss else 0.0,
                                 cfg.kl_estimator, cfg.loss_type, cfg.max_new_tokens)
        return loss, {"pg": loss, **stats}

    def metrics(self, r: GroupRollout, learned: dict) -> dict[str, float]:
        """The spread of rewards within groups: a group whose K rewards are equal teaches nothing."""
        groups = r.scores.view(-1, self.cfg.num_generations)
        out = {"reward_std": groups.std(-1).mean().item(),
               "frac_reward_zero_std": (groups.std(-1) == 0).float().mean().item()}
        raw = r.rm_scores.view(-1, self.cfg.num_generations)
        if ((raw == 0) | (raw == 1)).all():      # a checker's 0/1 reward: which zero-std groups passed, which failed
            out.update({"groups/all_pass": (raw == 1).all(-1).float().mean().item(),
                        "groups/all_fail": (raw == 0).all(-1).float().mean().item()})
        return out
