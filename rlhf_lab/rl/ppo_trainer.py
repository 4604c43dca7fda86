"""The PPO loop of RLHF: rollouts, the KL-penalised reward, GAE and clipped updates, checkpoints.

One iteration (InstructGPT §3.5; Ziegler et al. 2019; Huang et al. 2024) has three phases,
timed separately in the history:

1. generate: sample a response to each of ``batch_size`` prompts from pi_theta at
   temperature T (KV cache, `rlhf_lab.lm.generation.sample`);
2. score: one batched forward per model: the policy (old log-probs and, with the shared
   value head, the values), the frozen reference pi_ref (its log-probs of the same
   tokens) and the reward model r_phi (the score). Then eq. (1)-(2) of `rlhf_lab.rl.ppo`:
   per-token rewards, GAE, whitened advantages;
3. learn: ``ppo_epochs`` passes over shuffled minibatches of the clipped losses.

The value function is a scalar head on the policy's last hidden state by default
("shared"): one forward gives both the logits and the values, which halves the cost on a
CPU, at the price of value-loss gradients reaching the policy's trunk (vf_coef = 0.1 keeps
that small). ``value_model="separate"`` trains a critic of its own, initialised from the
reward model as Huang et al. do, with no interference and twice the forwards.

Dropout is off in every model for the whole run (eval mode), as COURSE.md asks.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from rlhf_lab.config import DeviceScalars, adamw, bf16_autocast, get_device, progress_bar, set_seed
from rlhf_lab.lm.generation import sample
from rlhf_lab.lm.models import freeze, load_model
from rlhf_lab.reward.model import load_reward_model
from rlhf_lab.rl.checkpoints import checkpoint_note, read_checkpoint, write_checkpoint
from rlhf_lab.rl.ppo import (AdaptiveKLController, FixedKLController, PPOConfig, explained_variance, gae, kl_estimate,
                             masked_mean, per_token_rewards, policy_loss, value_loss, whiten)
from rlhf_lab.rl.ptx import pretraining_batches, ptx_loss
from rlhf_lab.rl.rollout import (Episodes, PPOHistory, RewardFn, Rollout, ValueModel, _trim, as_prompts, pack_episodes,
                                 packed_policy_forward, policy_forward, value_head)
from rlhf_lab.utils.artefacts import ArtefactError, check_writable, recover
from rlhf_lab.world.reviews import Prompt, judge_many
from rlhf_lab.utils.guard import nonfinite_parameter


class PPOTrainer:
    """PPO with a per-token KL penalty against a frozen reference.

        trainer = PPOTrainer(PPOConfig.tiny(), prompts)           # loads cfg.model and cfg.reward_model
        history = trainer.train(out_dir=runs_dir("ppo"))          # checkpoints there
        trainer = PPOTrainer.resume(runs_dir("ppo"))              # continues where it stopped

    ``policy``, ``tokenizer``, ``reference`` and ``reward_fn`` may be passed in (a notebook
    reuses loaded models); ``reward_fn(prompt_texts, completions) -> (B,)`` replaces the
    reward model, for example with a gold judge.
    """

    config_cls = PPOConfig
    """The config a checkpoint of this trainer holds (`resume` reads it)."""

    def __init__(self, cfg: PPOConfig, prompts, policy=None, tokenizer=None, reference=None,
                 reward_fn: RewardFn | None = None, reward_model=None):
        self._setup(cfg, prompts, policy, tokenizer, reference, reward_fn, reward_model)
        if cfg.value_model == "shared":
            self.head, self.critic = value_head(self.policy.config.hidden_size).to(self.device), None
        else:
            if self._reward_model is None:
                raise ValueError("value_model='separate' initialises the critic from the reward model: pass reward_model")
            self.critic = ValueModel(copy.deepcopy(self._reward_model.backbone)).to(self.device).eval()
            self.critic.requires_grad_(True)
            self.head = None
        params = list(self.policy.parameters()) + list((self.head or self.critic).parameters())
        self.optimizer = adamw(params, lr=cfg.lr, eps=1e-5)   # eps 1e-5: Huang et al., detail 2
        self.kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.horizon) if cfg.adaptive_kl
                       else FixedKLController(cfg.kl_coef))
        self.generator = torch.Generator().manual_seed(cfg.seed)   # prompt draws and minibatch order
        self.ptx = pretraining_batches(cfg, self.tokenizer, self.policy, self.device)   # PPO-ptx, or None
        self.history = PPOHistory()
        self.checkpoint_dir: Path | None = None
        # the update's forward (and so its backward) compiled with dynamic shapes: minibatch widths vary
        self._learn_forward = self._learn_function(cfg)

    @staticmethod
    def _learn_function(cfg):
        """The update's forward: packed or padded, compiled with dynamic shapes under compile="all"."""
        f = packed_policy_forward if cfg.padding_free else policy_forward
        return torch.compile(f, dynamic=True) if getattr(cfg, "compile", "off") == "all" else f

    def _setup(self, cfg, prompts, policy, tokenizer, reference, reward_fn, reward_model) -> None:
        """What every RL trainer of the kit shares: the prompts, the device, the policy, the frozen
        reference (a second load of the same SFT model) and the reward (a reward model, or ``reward_fn``)."""
        self.cfg, self.prompts = cfg, as_prompts(prompts)
        self.ptx = None   # PPO-ptx's pre-training batches: PPOTrainer sets them, critic-free trainers have none
        self.device = get_device(cfg.device, verbose=False)
        set_seed(cfg.seed)
        if policy is None:
            policy, tokenizer = load_model(cfg.model, role="policy", device=self.device)
        elif tokenizer is None:
            raise ValueError("pass the policy's tokenizer along with the policy")
        if not any(p.requires_grad for p in policy.parameters()):
            raise ValueError("the policy is frozen (a reference copy?); load it with role='policy'")
        self.policy, self.tokenizer = policy.eval(), tokenizer   # eval(): dropout off for the whole run
        self.reference = freeze(reference if reference is not None else load_model(cfg.model, device=self.device)[0])
        if reward_fn is None:
            rm = reward_model or load_reward_model(cfg.reward_model, device=self.device)
            rm.eval().requires_grad_(False)
            reward_fn = lambda p, c: rm.score(p, c, batch_size=len(p))   # noqa: E731 (one batched forward)
            self._reward_model = rm
        else:
            self._reward_model = reward_model
        self.reward_fn = reward_fn

    # -- phases ----------------------------------------------------------------------------

    def _autocast(self):
        return bf16_autocast(self.device, self.cfg.bf16)

    def _values(self, ids, mask, start, head_values):
        """V(s_t): the shared head's values from the policy forward, or the separate critic's."""
        if self.critic is None:
            return head_values
        return self.critic(ids, mask, start)

    @torch.no_grad()
    def _generate(self, prompts: list[Prompt]):
        """The generate phase: one sampled response per prompt (a `generation.Sample`)."""
        cfg = self.cfg
        with self._autocast():
            s = sample(self.policy, self.tokenizer, [p.text for p in prompts], max_new_tokens=cfg.max_new_tokens,
                       temperature=cfg.temperature, device=self.device, compile=cfg.compile != "off")
        self._t_generate = time.perf_counter()   # end of the generate phase, read by `iteration`
        return s

    @torch.no_grad()
    def _score(self, prompts: list[Prompt], s) -> torch.Tensor:
        """The reward of each response (B,), float32 on the device; a NaN or infinite one stops the run
        before the update, naming the prompt and the response."""
        with self._autocast():
            rm_scores = self.reward_fn([p.text for p in prompts], s.completions).to(self.device).float()
        bad = ~torch.isfinite(rm_scores)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise FloatingPointError(
                f"the reward is {rm_scores[i].item()} for {int(bad.sum())} of {len(prompts)} responses at iteration "
                f"{len(self.history) + 1} (first: prompt {prompts[i].text!r}, response {s.completions[i]!r}); stopped "
                f"before the update. {self._checkpoint_note()}")
        return rm_scores

    @torch.no_grad()
    def rollout(self, prompts: list[Prompt]) -> Rollout:
        """Generate and score one batch of episodes; eq. (1) rewards and eq. (2) advantages."""
        cfg = self.cfg
        s = self._generate(prompts)
        ids, attn, start, mask = s.input_ids, s.attention_mask, s.prompt_ids.shape[1], s.completion_mask.float()
        episodes = Episodes.of(ids, attn, start, mask)
        logprobs, values, ent, ref_logprobs = self._score_forwards(episodes, ids, attn, start, mask.shape[1])
        rm_scores = self._score(prompts, s)
        scores = rm_scores.clone()
        if cfg.unfinished_score is not None:
            scores[~s.finished] = cfg.unfinished_score
        if cfg.score_clip is not None:
            scores = scores.clamp(-cfg.score_clip, cfg.score_clip)
        logprobs, ref_logprobs, values = logprobs * mask, ref_logprobs * mask, values * mask
        kl = kl_estimate(logprobs, ref_logprobs, cfg.kl_estimator) * mask
        rewards, non_score = per_token_rewards(scores, kl, mask, self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)
        return Rollout(prompts, s.completions, ids, attn, start, mask, logprobs, ref_logprobs, values, rm_scores,
                       scores, s.finished, kl, rewards, non_score, advantages, returns, ent * mask, **vars(episodes))

    @torch.no_grad()
    def _score_forwards(self, e: Episodes, ids, attn, start: int, width: int):
        """The score phase's forwards of a batch: the policy's log-probs, values (with a critic) and
        entropies, and the reference's log-probs, each (B, width); packed rows when padding_free."""
        cfg = self.cfg
        with self._autocast():
            if cfg.padding_free:
                rows = pack_episodes(e, range(len(e.prompt_tokens)), self.tokenizer.pad_token_id, self.device,
                                     width=width, hidden_size=self.policy.config.hidden_size)
                logprobs, values, ent = packed_policy_forward(self.policy, rows, cfg.temperature, self.head, True)
                values = self.critic.packed(rows) if self.critic is not None else values
                ref_logprobs = packed_policy_forward(self.reference, rows, cfg.temperature)[0]
            else:
                logprobs, values, ent = policy_forward(self.policy, ids, attn, start, cfg.temperature, self.head, True)
                values = self._values(ids, attn, start, values)
                ref_logprobs = policy_forward(self.reference, ids, attn, start, cfg.temperature)[0]
        return logprobs, values, ent, ref_logprobs

    def _learn_forward_rows(self, r: Rollout, host_rows: list[int], mb: torch.Tensor, head, entropy: bool):
        """The update's forward of one minibatch: (logprobs, values or None, entropy or None, response
        column slice); packed rows when padding_free, else padded rows trimmed to the minibatch."""
        cfg = self.cfg
        with self._autocast():
            if cfg.padding_free:
                rows = pack_episodes(r, host_rows, self.tokenizer.pad_token_id, self.device,
                                     hidden_size=self.policy.config.hidden_size)
                logprobs, values, ent = self._learn_forward(self.policy, rows, cfg.temperature, head, entropy)
                values = self.critic.packed(rows) if self.critic is not None else values
                return logprobs, values, ent, slice(0, rows.width)
            ids, attn, start, cols = _trim(r, mb, host_rows)
            logprobs, values, ent = self._learn_forward(self.policy, ids, attn, start, cfg.temperature, head,
                                                        entropy=entropy)
            return logprobs, self._values(ids, attn, start, values), ent, cols

    def minibatches(self, r: Rollout) -> list[list[int]]:
        """Episode indices of every minibatch of the ``ppo_epochs`` passes, on the host: each pass a
        fresh permutation cut into minibatches; with ``group_by_length`` the permutation is sorted
        by response length first (ties stay shuffled) and the minibatches are then shuffled, so a
        minibatch holds episodes of similar length and is cut narrower (`_trim`)."""
        cfg, out = self.cfg, []
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(cfg.batch_size, generator=self.generator).tolist()
            if cfg.group_by_length:
                order.sort(key=lambda i: r.response_lengths[i])          # stable: equal lengths stay shuffled
                chunks = [order[i:i + cfg.mini_batch_size] for i in range(0, len(order), cfg.mini_batch_size)]
                out += [chunks[j] for j in torch.randperm(len(chunks), generator=self.generator).tolist()]
            else:
                out += [order[i:i + cfg.mini_batch_size] for i in range(0, len(order), cfg.mini_batch_size)]
        return out

    def learn(self, r: Rollout) -> dict[str, float]:
        """``ppo_epochs`` passes of shuffled minibatches over the rollout. Returns averaged stats.

        Nothing in the loop waits for the device: the minibatch indices go over in one copy,
        their widths come from the host's lengths, and the statistics (and the check for a
        non-finite loss) stay on the device until the loop is done. A non-finite loss is
        reported after the loop, before anything is saved.
        """
        cfg = self.cfg
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        batches = self.minibatches(r)
        scalars, rows = DeviceScalars(self.device, every=len(batches)), []   # read once, after the loop
        on_device = torch.tensor(batches, device=self.device)      # (steps, mini_batch_size), one copy
        for host_rows, mb in zip(batches, on_device):
            logprobs, values, ent, cols = self._learn_forward_rows(r, host_rows, mb, self.head, cfg.ent_coef > 0)
            m = r.mask[mb][:, cols]
            pg, pg_stats = policy_loss(logprobs, r.logprobs[mb][:, cols], r.advantages[mb][:, cols], m,
                                       cfg.cliprange)
            vf, vf_stats = value_loss(values, r.values[mb][:, cols], r.returns[mb][:, cols], m,
                                      cfg.cliprange_value)
            loss = pg + cfg.vf_coef * vf
            if cfg.ent_coef > 0:
                loss = loss - cfg.ent_coef * masked_mean(ent, m)
            extra = {}
            if self.ptx is not None:   # PPO-ptx: + gamma * (-log-likelihood of pre-training text)
                with self._autocast():
                    extra["ptx"] = ptx_loss(self.policy, *self.ptx.next())
                loss = loss + cfg.ptx_coef * extra["ptx"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.optimizer.step()
            rows += scalars.add(pg=pg, vf=vf, vf_clipfrac=vf_stats["clipfrac"], grad_norm=grad_norm, **pg_stats,
                                **extra)
        rows += scalars.read()
        where = f"at iteration {len(self.history) + 1}"
        for step, row in enumerate(rows, 1):
            loss = row["pg"] + cfg.vf_coef * row["vf"] + cfg.ptx_coef * row.get("ptx", 0.0)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the PPO loss is {loss} {where}, minibatch step {step} of {len(rows)} (policy loss {row['pg']}, "
                    f"value loss {row['vf']}): the update diverged; lower lr (={cfg.lr}) or clip the score "
                    f"(score_clip). The policy in memory is spoiled; {self._checkpoint_note()}")
            if not math.isfinite(row["grad_norm"]):
                raise FloatingPointError(
                    f"the gradient norm is {row['grad_norm']} {where}, minibatch step {step} of {len(rows)}, with a "
                    f"finite loss ({loss:.4g}): a gradient overflowed or a model produced NaN in its backward pass; "
                    f"lower lr (={cfg.lr}) or max_grad_norm, and check the reward model. The policy in memory is "
                    f"spoiled; {self._checkpoint_note()}")
        self._check_parameters(f"after the update {where}")
        return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0] if k != "grad_norm"}

    def _check_parameters(self, when: str) -> None:
        """Stop before anything is saved if a parameter of the policy or the critic (if any) is NaN or inf."""
        for label, module in (("policy", self.policy), ("value function", self.head or self.critic)):
            bad = nonfinite_parameter(module) if module is not None else None   # critic-free runs have none
            if bad:
                raise FloatingPointError(
                    f"the {label}'s parameter {bad} is not finite {when} (lr={self.cfg.lr}): the update diverged; "
                    f"lower lr or clip the score (score_clip). {self._checkpoint_note()}")

    def iteration(self) -> dict[str, float]:
        """One rollout and one update; appends a row to the history and returns it."""
        cfg, t0 = self.cfg, time.perf_counter()
        idx = torch.randint(len(self.prompts), (cfg.batch_size,), generator=self.generator).tolist()
        prompts = [self.prompts[i] for i in idx]
        r = self.rollout(prompts)
        t_score = time.perf_counter()
        beta = self.kl_ctl.value
        learned = self.learn(r)
        t_learn = time.perf_counter()
        gold = torch.tensor([g.gold for g in judge_many(prompts, r.completions)])
        kl_seq = r.kl.sum(-1) if cfg.kl_estimator == "k1" else (r.logprobs - r.ref_logprobs).sum(-1)
        kl_mean = kl_seq.mean().item()
        self.kl_ctl.update(kl_mean, cfg.batch_size)
        n_tokens = r.mask.sum().clamp(min=1)
        row = {
            "iteration": len(self.history) + 1, "episodes": (len(self.history) + 1) * cfg.batch_size,
            "objective/scores": r.scores.mean().item(), "objective/rm_score": r.rm_scores.mean().item(),
            "objective/gold": gold.mean().item(), "objective/kl": kl_mean,
            "objective/kl_k3": kl_estimate(r.logprobs, r.ref_logprobs, "k3").mul(r.mask).sum(-1).mean().item(),
            "objective/entropy": (r.entropy.sum() / n_tokens).item(),
            "objective/non_score_reward": r.non_score_rewards.sum(-1).mean().item(),
            "objective/rlhf_reward": (r.scores + r.non_score_rewards.sum(-1)).mean().item(),
            "objective/kl_coef": beta,
            "policy/approxkl_avg": learned["approxkl"], "policy/clipfrac_avg": learned["clipfrac"],
            "policy/ratio_avg": learned["ratio"], "loss/policy_avg": learned["pg"], "loss/value_avg": learned["vf"],
            "val/clipfrac_avg": learned["vf_clipfrac"],
            "val/explained_variance": explained_variance(r.values, r.returns, r.mask),
            "response/length": r.mask.sum(-1).mean().item(), "response/finished": r.finished.float().mean().item(),
            "time/generate": self._t_generate - t0, "time/score": t_score - self._t_generate,
            "time/learn": t_learn - t_score, "time/iteration": time.perf_counter() - t0,
        }
        if "ptx" in learned:   # PPO-ptx: the pre-training documents' loss (nats per token)
            row["loss/ptx_avg"] = learned["ptx"]
        return self._record(row, prompts, r, gold, kl_seq, "lower lr (={lr}) or clip the score (score_clip)")

    def _record(self, row: dict, prompts, r: Rollout, gold: torch.Tensor, kl_seq: torch.Tensor, fix: str) -> dict:
        """Check an iteration's row (a NaN stops the run before anything is saved; ``fix`` says what to
        change), warn on a negative KL, and append the row and four samples to the history."""
        bad = [k for k, v in row.items() if k.split("/")[0] in ("objective", "policy", "loss") and not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite at iteration {row['iteration']} "
                f"({', '.join(f'{k}={row[k]}' for k in bad)}); stopped before anything was saved: "
                f"{fix.format(lr=self.cfg.lr)}. {self._checkpoint_note()}")
        self._warn_negative_kl(kl_seq, row["iteration"])
        self.history.rows.append(row)
        self.history.samples.append([{"prompt": p.text, "completion": c, "score": round(s, 3), "gold": round(g, 3)}
                                     for p, c, s, g in zip(prompts[:4], r.completions[:4], r.scores.tolist()[:4],
                                                           gold.tolist()[:4])])
        return row

    @staticmethod
    def _warn_negative_kl(kl_seq: torch.Tensor, iteration: int) -> None:
        """Warn when the batch's mean KL is below 0 by more than two standard errors: a real KL
        cannot be negative, so the estimate is biased, and the penalty then pays the policy to drift."""
        mean, stderr = kl_seq.mean().item(), (kl_seq.std() / math.sqrt(kl_seq.numel())).item()
        if mean < -1e-3 and mean < -2 * stderr:
            warnings.warn(
                f"iteration {iteration}: the KL estimate is negative ({mean:.3f} +- {stderr:.3f} nats). The "
                f"samples do not come from the policy the log-probs are computed with: check that generation "
                f"uses no top-k/top-p or minimum length, that log-probs use the sampling temperature, and that "
                f"PAD tokens after EOS are masked out.", RuntimeWarning, stacklevel=3)

    def train(self, iterations: int | None = None, out_dir=None, on_iteration: Callable | None = None,
              progress: bool = True) -> PPOHistory:
        """Run until ``iterations`` (default cfg.iterations) have been done in total; checkpoint into
        ``out_dir`` every cfg.checkpoint_every iterations and at the end. Returns the history."""
        total = self.cfg.iterations if iterations is None else iterations
        if out_dir is not None:
            self.checkpoint_dir = check_writable(out_dir, what="checkpoint folder")
        bar = progress_bar(total=total, initial=len(self.history), desc=getattr(self.cfg, "algo", "ppo").upper(),
                   disable=not progress)
        while len(self.history) < total:
            row = self.iteration()
            bar.update(1)
            bar.set_postfix(score=f"{row['objective/scores']:+.2f}", gold=f"{row['objective/gold']:+.2f}",
                            kl=f"{row['objective/kl']:.2f}")
            if on_iteration is not None:
                on_iteration(self.history)
            every = self.cfg.checkpoint_every
            if self.checkpoint_dir is not None and (len(self.history) == total or (every and len(self.history) % every == 0)):
                self.save(self.checkpoint_dir)
        bar.close()
        return self.history

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint_note(self) -> str:
        return checkpoint_note(self.checkpoint_dir)

    def save(self, path) -> Path:
        """Write a resumable checkpoint: the policy (save_pretrained, loadable by `load_model(path /
        "policy")`), the value function, optimizer, beta, RNG states, prompts, config and history.

        Written whole into a staging folder and swapped in atomically (`rlhf_lab.utils.artefacts`): a kill
        at any instant leaves the previous checkpoint or this one, complete. Parameters that are not
        finite are refused before anything is written."""
        self._check_parameters(f"when saving after iteration {len(self.history)}")
        state = {"optimizer": self.optimizer.state_dict(), "kl_coef": self.kl_ctl.value,
                 "torch_rng": torch.get_rng_state(), "generator": self.generator.get_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        if self.ptx is not None:   # PPO-ptx's document draws continue where they stopped
            state["ptx_generator"] = self.ptx.generator.get_state()
        return write_checkpoint(path, self.policy, self.tokenizer, self.head if self.critic is None else self.critic,
                                state, self.cfg, self.prompts, self.history)

    @classmethod
    def resume(cls, path, reward_fn: RewardFn | None = None, device=None, **overrides) -> "PPOTrainer":
        """Rebuild a trainer from `save`'s folder; training continues exactly where it stopped (same
        machine and seed: the same metrics as an uninterrupted run). ``overrides`` change config fields
        (e.g. iterations=40 to go further). Every file of the checkpoint is checked first; a damaged
        one is an `ArtefactError` naming it."""
        path = recover(Path(path))
        cp = read_checkpoint(path, cls.config_cls, **overrides, **({"device": str(device)} if device is not None else {}))
        cfg = cp["config"]
        dev = get_device(cfg.device, verbose=False)
        policy, tokenizer = load_model(str(path / "policy"), role="policy", device=dev)
        bad = nonfinite_parameter(policy)
        if bad:
            raise ArtefactError(f"{path / 'policy'}: parameter {bad} is not finite; this checkpoint was saved after "
                                f"training diverged and cannot be resumed: start a new run with another --out")
        trainer = cls(cfg, cp["prompts"], policy=policy, tokenizer=tokenizer, reward_fn=reward_fn)
        critic = trainer.head if trainer.critic is None else trainer.critic
        try:
            if critic is not None:
                critic.load_state_dict(cp["value"])
        except RuntimeError as err:
            raise ArtefactError(f"{path / 'value.safetensors'} does not fit this run's value function "
                                f"(value_model={cfg.value_model!r}): {str(err)[:200]}") from None
        state = cp["state"]
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.kl_ctl.value = state["kl_coef"]
        torch.set_rng_state(state["torch_rng"])
        trainer.generator.set_state(state["generator"])
        if trainer.ptx is not None and "ptx_generator" in state:
            trainer.ptx.generator.set_state(state["ptx_generator"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        trainer.history = cp["history"]
        trainer.checkpoint_dir = path
        return trainer

