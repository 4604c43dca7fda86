"""RLOO, GRPO and Dr. GRPO: PPO's loop without the critic, K samples per prompt (`rlhf_lab.rl.group_rl`).

    trainer = GroupTrainer(GroupConfig.tiny("grpo"), prompts)    # loads cfg.model and cfg.reward_model
    history = trainer.train(out_dir=runs_dir("grpo"))             # checkpoints there
    trainer = GroupTrainer.resume(runs_dir("grpo"))               # continues where it stopped

It is `PPOTrainer` with three phases replaced: an iteration draws ``batch_size / num_generations``
prompts and samples each ``num_generations`` times; the rollout turns the (prompts x K) rewards
into group-relative advantages, one per response, instead of running a value head and GAE; the
update is the clipped surrogate aggregated by ``loss_type``, with the KL in the reward (RLOO's and
PPO's way, before the advantages) or in the loss (GRPO's). Generation, scoring, the NaN guards,
checkpoints (no value.safetensors), resume and the history's metric names are PPO's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_lab.config import ConfigError, DeviceScalars, adamw, validate_config
from rlhf_lab.rl.group_rl import LOSS_TYPES, group_advantages, group_loss
from rlhf_lab.rl.ppo import KL_ESTIMATORS, FixedKLController, kl_estimate
from rlhf_lab.rl.ppo_trainer import PPOTrainer
from rlhf_lab.rl.rollout import Episodes, PPOHistory, Rollout
from rlhf_lab.world.reviews import judge_many

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
    """The reward model r_phi: "tiny-rm" (shipped) or a folder."""
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

    has_critic = False   # a class attribute, not a field: checkpoints hold no value function

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


class GroupTrainer(PPOTrainer):
    """RLOO / GRPO / Dr. GRPO on PPO's machinery (see the module doc)."""

    config_cls = GroupConfig

    def __init__(self, cfg: GroupConfig, prompts, policy=None, tokenizer=None, reference=None,
                 reward_fn=None, reward_model=None):
        self._setup(cfg, prompts, policy, tokenizer, reference, reward_fn, reward_model)
        self.head = self.critic = None
        self.optimizer = adamw(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.kl_ctl = FixedKLController(cfg.beta if cfg.kl_in == "reward" else 0.0)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.history = PPOHistory()
        self.checkpoint_dir: Path | None = None
        self._learn_forward = self._learn_function(cfg)

    @torch.no_grad()
    def rollout(self, prompts) -> Rollout:
        """K responses per prompt (``prompts`` holds each prompt K times in a row), their rewards
        with the KL in the reward or not, and one group-relative advantage per response."""
        cfg, k = self.cfg, self.cfg.num_generations
        s = self._generate(prompts)
        ids, attn, start, mask = s.input_ids, s.attention_mask, s.prompt_ids.shape[1], s.completion_mask.float()
        episodes = Episodes.of(ids, attn, start, mask)
        logprobs, _, ent, ref_logprobs = self._score_forwards(episodes, ids, attn, start, mask.shape[1])
        rm_scores = self._score(prompts, s)
        scores = rm_scores.clone()
        if cfg.unfinished_score is not None:
            scores[~s.finished] = cfg.unfinished_score
        logprobs, ref_logprobs = logprobs * mask, ref_logprobs * mask
        kl = kl_estimate(logprobs, ref_logprobs, cfg.kl_estimator) * mask
        non_score = -self.kl_ctl.value * kl            # 0 when the KL is in the loss
        total = scores + non_score.sum(-1)
        adv = group_advantages(total.view(-1, k), cfg.advantage).view(-1)
        zeros = torch.zeros_like(mask)
        return Rollout(prompts, s.completions, ids, attn, start, mask, logprobs, ref_logprobs, zeros, rm_scores,
                       scores, s.finished, kl, non_score, non_score, adv.unsqueeze(-1) * mask, zeros, ent * mask,
                       **vars(episodes))

    def minibatches(self, r: Rollout) -> list[list[int]]:
        """``num_iterations`` passes; each a fresh order of whole groups cut into minibatches."""
        cfg, k, out = self.cfg, self.cfg.num_generations, []
        n_groups, per = cfg.batch_size // k, cfg.mini_batch_size // k
        for _ in range(cfg.num_iterations):
            groups = torch.randperm(n_groups, generator=self.generator).tolist()
            for i in range(0, n_groups, per):
                out.append([g * k + j for g in groups[i:i + per] for j in range(k)])
        return out

    def learn(self, r: Rollout) -> dict[str, float]:
        """The clipped surrogate of `group_rl.group_loss` over ``num_iterations`` passes. Statistics
        stay on the device until the loop is done; a non-finite loss or gradient stops the run."""
        cfg = self.cfg
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        batches = self.minibatches(r)
        scalars, rows = DeviceScalars(self.device, every=len(batches)), []
        on_device = torch.tensor(batches, device=self.device)
        adv_seq = r.advantages.sum(-1) / r.mask.sum(-1).clamp(min=1)     # the response's one advantage
        in_loss = cfg.kl_in == "loss" and cfg.beta > 0
        for host_rows, mb in zip(batches, on_device):
            logprobs, _, _, cols = self._learn_forward_rows(r, host_rows, mb, None, False)
            m = r.mask[mb][:, cols]
            loss, stats = group_loss(logprobs, r.logprobs[mb][:, cols], r.ref_logprobs[mb][:, cols] if in_loss else None,
                                     adv_seq[mb], m, cfg.epsilon, cfg.beta if in_loss else 0.0, cfg.kl_estimator,
                                     cfg.loss_type, cfg.max_new_tokens)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.optimizer.step()
            rows += scalars.add(pg=loss, grad_norm=grad_norm, **stats)
        rows += scalars.read()
        where = f"at iteration {len(self.history) + 1}"
        for step, row in enumerate(rows, 1):
            for key, what in (("pg", "loss"), ("grad_norm", "gradient norm")):
                if not math.isfinite(row[key]):
                    raise FloatingPointError(
                        f"the {cfg.algo} {what} is {row[key]} {where}, minibatch step {step} of {len(rows)}: the "
                        f"update diverged; lower lr (={cfg.lr}). The policy in memory is spoiled; "
                        f"{self._checkpoint_note()}")
        self._check_parameters(f"after the update {where}")
        return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0] if k != "grad_norm"}

    def iteration(self) -> dict[str, float]:
        """One rollout of batch_size / K prompts x K samples and one update; appends a row to the history."""
        cfg, t0, k = self.cfg, time.perf_counter(), self.cfg.num_generations
        idx = torch.randint(len(self.prompts), (cfg.batch_size // k,), generator=self.generator).tolist()
        prompts = [self.prompts[i] for i in idx for _ in range(k)]
        r = self.rollout(prompts)
        t_score = time.perf_counter()
        learned = self.learn(r)
        t_learn = time.perf_counter()
        gold = torch.tensor([g.gold for g in judge_many(prompts, r.completions)])
        kl_seq = (r.logprobs - r.ref_logprobs).sum(-1)
        groups = r.scores.view(-1, k)
        n_tokens = r.mask.sum().clamp(min=1)
        row = {
            "iteration": len(self.history) + 1, "episodes": (len(self.history) + 1) * cfg.batch_size,
            "objective/scores": r.scores.mean().item(), "objective/rm_score": r.rm_scores.mean().item(),
            "objective/gold": gold.mean().item(), "objective/kl": kl_seq.mean().item(),
            "objective/kl_k3": kl_estimate(r.logprobs, r.ref_logprobs, "k3").mul(r.mask).sum(-1).mean().item(),
            "objective/entropy": (r.entropy.sum() / n_tokens).item(),
            "objective/non_score_reward": r.non_score_rewards.sum(-1).mean().item(),
            "objective/kl_coef": cfg.beta,
            "reward_std": groups.std(-1).mean().item(),
            "frac_reward_zero_std": (groups.std(-1) == 0).float().mean().item(),
            "policy/approxkl_avg": learned["approxkl"], "policy/clipfrac_avg": learned["clipfrac"],
            "policy/ratio_avg": learned["ratio"], "loss/policy_avg": learned["pg"],
            "response/length": r.mask.sum(-1).mean().item(), "response/finished": r.finished.float().mean().item(),
            "time/generate": self._t_generate - t0, "time/score": t_score - self._t_generate,
            "time/learn": t_learn - t_score, "time/iteration": time.perf_counter() - t0,
        }
        return self._record(row, prompts, r, gold, kl_seq, "lower lr (={lr})")
