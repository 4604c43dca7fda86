"""The loop every RL trainer of the kit shares: sample, score, update, record, checkpoint.

One iteration of RLHF's RL stage (InstructGPT §3.5; Ziegler et al. 2019; Huang et al. 2024) has
three phases, timed separately in the history:

1. generate: a response to each prompt, sampled from pi_theta at temperature T (KV cache);
2. score: one batched forward per model: the policy's log-probs of its tokens (and the values, with
   a value function), the frozen reference's log-probs of the same tokens, the reward r_phi(x, y)
   and the per-token KL estimate (`rlhf_lab.rl.ppo.kl_estimate`, Schulman 2020). The trainer's
   ``rollout`` turns them into advantages: GAE per token (`rlhf_lab.rl.ppo` eq. 2) or one
   group-relative advantage per response (`rlhf_lab.rl.group_rl` eqs. 1-3);
3. learn: ``cfg.passes`` passes over the batch in minibatches, one clipped Adam step each on the
   trainer's loss (PPO's clipped surrogate, Schulman et al. 2017 eq. 7, in every trainer).

`RLTrainer` does all of it but what differs. A trainer supplies ``rollout(prompts)`` (a
`rollout.Rollout` built from `generate_and_score`), ``pass_minibatches(r)``, ``minibatch_loss(r,
rows, mb)``, ``metrics(r, learned)`` (its columns of the history), ``kl_controller()`` and
``kl_coef``; it may add a value function (`build_value_function`: a ``head`` on the policy's last
hidden state or a separate ``critic``), checkpoint state (`extra_state`) and ``samples_per_prompt``. Dropout is
off for the whole run (Huang et al. 2024). A NaN or infinite reward, loss, gradient norm, parameter or metric stops
the run before anything is saved (`rlhf_lab.utils.guard`), naming the checkpoint that is intact.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from rlhf_lab.config import adamw, bf16_autocast, get_device, set_seed
from rlhf_lab.utils.progress import DeviceScalars, progress_bar
from rlhf_lab.lm.generation import sample
from rlhf_lab.lm.models import freeze, load_model
from rlhf_lab.reward.ensemble import load_reward
from rlhf_lab.rl.checkpoints import (checkpoint_note, load_value_function, read_checkpoint, read_policy,
                                     write_checkpoint)
from rlhf_lab.rl.ppo import kl_estimate
from rlhf_lab.rl.rollout import (Episodes, PPOHistory, RewardFn, Rollout, as_prompts, pack_episodes,
                                 packed_policy_forward, policy_forward, trim_minibatch)
from rlhf_lab.utils.artefacts import check_writable, recover
from rlhf_lab.utils.guard import check_parameters, check_step
from rlhf_lab.world.reviews import Prompt, judge_many
from rlhf_lab.world.specs import SpecReward


class RLTrainer:
    """Setup, the three phases, one optimizer step and its guard, the history, `train`, `save`, `resume`.

    ``policy``, ``tokenizer``, ``reference`` and ``reward_fn`` may be passed in (a notebook reuses
    loaded models); ``reward_fn(prompt_texts, completions) -> (B,)`` replaces the reward model, for
    example with a gold judge.
    """

    config_cls: type                      # the config a checkpoint of this trainer holds (`resume` reads it)
    algo: str                             # `rlhf-lab <algo>` runs it: the progress bar's and the checkpoint's name
    remedy = "lower lr (={lr})"           # what to change when the run diverges, for the error messages
    loss_terms: tuple[tuple[str, str], ...] = ()   # (statistic, name) of the loss's terms, for those messages
    samples_per_prompt = 1                # an iteration draws batch_size / samples_per_prompt prompts
    head: nn.Module | None = None         # a value head on the policy's last hidden state (values from its forward)
    critic: nn.Module | None = None       # a value model of its own (`rollout.ValueModel`) on the same rows

    def __init__(self, cfg, prompts, policy=None, tokenizer=None, reference=None, reward_fn: RewardFn | None = None,
                 reward_model=None):
        self.cfg, self.prompts = cfg, as_prompts(prompts)
        self.device = get_device(cfg.device, verbose=False)
        set_seed(cfg.seed)
        if policy is None:
            policy, tokenizer = load_model(cfg.model, role="policy", device=self.device)
        elif tokenizer is None:
            raise ValueError("pass the policy's tokenizer along with the policy")
        if not any(p.requires_grad for p in policy.parameters()):
            raise ValueError("the policy is frozen (a reference copy?); load it with role='policy'")
        self.policy, self.tokenizer = policy.eval(), tokenizer   # eval(): dropout off for the whole run
        # pi_ref: a second load of the same SFT model, frozen
        self.reference = freeze(reference if reference is not None else load_model(cfg.model, device=self.device)[0])
        reward_fn = SpecReward() if reward_fn is None and cfg.reward_model == "verifier" else reward_fn   # notebook 09
        if reward_fn is None:
            rm = reward_model or load_reward(cfg.reward_model, device=self.device)
            rm.eval().requires_grad_(False)
            reward_fn = lambda p, c: rm.score(p, c, batch_size=len(p))   # noqa: E731 (one batched forward)
            reward_model = rm
        self.reward_fn, self._reward_model = reward_fn, reward_model
        self.build_value_function()   # here: it draws from the seeded RNG, and the optimizer trains it too
        vf = self.value_function
        params = list(self.policy.parameters()) + (list(vf.parameters()) if vf is not None else [])
        self.optimizer = adamw(params, lr=cfg.lr, eps=1e-5)   # eps 1e-5: Huang et al., detail 2
        self.kl_ctl = self.kl_controller()
        self.generator = torch.Generator().manual_seed(cfg.seed)   # prompt draws and minibatch order
        self.history = PPOHistory()
        self.checkpoint_dir: Path | None = None
        f = packed_policy_forward if cfg.padding_free else policy_forward   # compiled: dynamic, minibatch widths vary
        self._learn_forward = torch.compile(f, dynamic=True) if cfg.compile == "all" else f

    # -- what a trainer may add ------------------------------------------------------------------

    def build_value_function(self) -> None:
        """Set ``head`` or ``critic`` (a trainer with a value function does); the default has none."""

    @property
    def value_function(self) -> nn.Module | None:
        """The module saved as value.safetensors and trained with the policy: ``head``, ``critic`` or None."""
        return self.head if self.head is not None else self.critic

    def extra_state(self) -> dict:
        """Tensors a checkpoint holds beside the optimizer, beta and the RNG states (`load_extra_state`)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what `extra_state` saved (the default saves nothing)."""

    # -- the generate and score phases ------------------------------------------------------------

    def _autocast(self):   # bf16 forwards on a GPU that has them (cfg.bf16)
        return bf16_autocast(self.device, self.cfg.bf16)

    @torch.no_grad()
    def generate_and_score(self, prompts: list[Prompt]) -> tuple[dict, torch.Tensor | None]:
        """The generate and score phases of a batch. Returns (the keyword arguments of every `Rollout`
        but non_score_rewards, the values V(s_t) (B, T) or None without a value function). Log-probs,
        KL and entropies are 0 after each response's end; scores carry the unfinished-response penalty.
        A reward that is NaN or infinite stops the run before the update, naming the prompt and response."""
        cfg = self.cfg
        with self._autocast():
            s = sample(self.policy, self.tokenizer, [p.text for p in prompts], max_new_tokens=cfg.max_new_tokens,
                       temperature=cfg.temperature, device=self.device, compile=cfg.compile != "off",
                       bf16=cfg.bf16)
        self._t_generate = time.perf_counter()   # end of the generate phase, read by `iteration`
        ids, attn, start, mask = s.input_ids, s.attention_mask, s.prompt_ids.shape[1], s.completion_mask.float()
        episodes = Episodes.of(ids, attn, start, mask)
        logprobs, values, ent, ref_logprobs = self._score_forwards(episodes, ids, attn, start, mask.shape[1])
        with self._autocast():
            rm_scores = torch.as_tensor(self.reward_fn([p.text for p in prompts], s.completions), dtype=torch.float32).to(self.device)
        if (bad := ~torch.isfinite(rm_scores)).any():
            i = int(bad.nonzero()[0])
            raise FloatingPointError(
                f"the reward is {rm_scores[i].item()} for {int(bad.sum())} of {len(prompts)} responses at iteration "
                f"{len(self.history) + 1} (first: prompt {prompts[i].text!r}, response {s.completions[i]!r}); stopped "
                f"before the update. {self._checkpoint_note()}")
        scores = rm_scores.clone()
        if cfg.unfinished_score is not None:
            scores[~s.finished] = cfg.unfinished_score
        logprobs, ref_logprobs = logprobs * mask, ref_logprobs * mask
        kl = kl_estimate(logprobs, ref_logprobs, cfg.kl_estimator) * mask
        fields = dict(prompts=prompts, completions=s.completions, input_ids=ids, attention_mask=attn, start=start,
                      mask=mask, logprobs=logprobs, ref_logprobs=ref_logprobs, rm_scores=rm_scores, scores=scores,
                      finished=s.finished, kl=kl, entropy=ent * mask, **vars(episodes))
        return fields, (values * mask if values is not None else None)

    def _policy_forward(self, forward, rows: tuple, entropy: bool):
        """``forward`` of the policy on ``rows`` (a `PackedEpisodes`, or padded ``input_ids, attention_mask,
        start``): (logprobs, values or None, entropy or None), the values from the head or the critic."""
        logprobs, values, ent = forward(self.policy, *rows, self.cfg.temperature, self.head, entropy)
        if self.critic is not None:
            values = self.critic.packed(*rows) if self.cfg.padding_free else self.critic(*rows)
        return logprobs, values, ent

    @torch.no_grad()
    def _score_forwards(self, e: Episodes, ids, attn, start: int, width: int):
        """The score phase's forwards: the policy's log-probs, values (None without a value function)
        and entropies, the reference's log-probs, each (B, width); packed rows when padding_free."""
        cfg = self.cfg
        forward = packed_policy_forward if cfg.padding_free else policy_forward
        with self._autocast():
            rows = ((pack_episodes(e, range(len(e.prompt_tokens)), self.tokenizer.pad_token_id, self.device,
                                   width=width, hidden_size=self.policy.config.hidden_size),)
                    if cfg.padding_free else (ids, attn, start))
            logprobs, values, ent = self._policy_forward(forward, rows, True)
            ref_logprobs = forward(self.reference, *rows, cfg.temperature)[0]
        return logprobs, values, ent, ref_logprobs

    # -- the learn phase -------------------------------------------------------------------------

    def _learn_forward_rows(self, r: Rollout, host_rows: list[int], mb: torch.Tensor, entropy: bool):
        """The update's forward of one minibatch: (logprobs, values or None, entropy or None, response
        column slice); packed rows when padding_free, else padded rows trimmed to the minibatch."""
        with self._autocast():
            if self.cfg.padding_free:
                packed = pack_episodes(r, host_rows, self.tokenizer.pad_token_id, self.device,
                                       hidden_size=self.policy.config.hidden_size)
                rows, cols = (packed,), slice(0, packed.width)
            else:
                *rows, cols = trim_minibatch(r, mb, host_rows)
            return (*self._policy_forward(self._learn_forward, rows, entropy), cols)

    def minibatches(self, r: Rollout) -> list[list[int]]:
        """Episode indices of every minibatch of the ``cfg.passes`` passes, each pass drawn afresh."""
        return [mb for _ in range(self.cfg.passes) for mb in self.pass_minibatches(r)]

    def learn(self, r: Rollout) -> dict[str, float]:
        """One Adam step on `minibatch_loss` per minibatch of `minibatches`, the gradient clipped to
        max_grad_norm. Returns the statistics averaged over the steps.

        Nothing in the loop waits for the device: the minibatch indices go over in one copy, their
        widths come from the host's lengths, and the statistics (the loss and the gradient norm with
        them) stay on the device until the loop is done. A non-finite one is reported then, before
        anything is saved."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        batches = self.minibatches(r)
        scalars, rows = DeviceScalars(self.device, every=len(batches)), []   # read once, after the loop
        on_device = torch.tensor(batches, device=self.device)      # (steps, mini_batch_size), one copy
        for host_rows, mb in zip(batches, on_device):
            loss, stats = self.minibatch_loss(r, host_rows, mb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            self.optimizer.step()
            rows += scalars.add(loss=loss, grad_norm=grad_norm, **stats)
        rows += scalars.read()
        where = f"at iteration {len(self.history) + 1}"
        fix = (f"the update diverged; {self.remedy.format(lr=self.cfg.lr)}. The policy in memory is spoiled; "
               f"{self._checkpoint_note()}")
        for step, row in enumerate(rows, 1):
            terms = ", ".join(f"{name} {row[k]}" for k, name in self.loss_terms if k in row)
            check_step(row["loss"], row["grad_norm"], f"the {self.algo.upper()}",
                       f"{where}, minibatch step {step} of {len(rows)}" + (f" ({terms})" if terms else ""), fix)
        self._check_parameters(f"after the update {where}")
        return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0] if k not in ("loss", "grad_norm")}

    def _check_parameters(self, when: str) -> None:
        """Stop before anything is saved if a parameter of the policy or the value function is NaN or inf."""
        fix = f"the update diverged; {self.remedy.format(lr=self.cfg.lr)}. {self._checkpoint_note()}"
        check_parameters(self.policy, "the policy's", when, fix)
        check_parameters(self.value_function, "the value function's", when, fix)   # None: nothing to check

    # -- an iteration and the run ------------------------------------------------------------------

    def iteration(self) -> dict[str, float]:
        """One rollout and one update; appends a row of metrics (TRL's names) to the history and returns it."""
        cfg, t0, k = self.cfg, time.perf_counter(), self.samples_per_prompt
        idx = torch.randint(len(self.prompts), (cfg.batch_size // k,), generator=self.generator).tolist()
        prompts = [self.prompts[i] for i in idx for _ in range(k)]   # each drawn prompt k times in a row
        r = self.rollout(prompts)
        t_score = time.perf_counter()
        beta = self.kl_coef   # the coefficient this batch was scored with, before the controller moves it
        learned = self.learn(r)
        t_learn = time.perf_counter()
        gold = torch.tensor([g.gold for g in judge_many(prompts, r.completions)])
        # log pi(y|x) - log pi_ref(y|x) per response: k1 summed over its tokens, the KL the controller tracks
        kl_seq = (r.logprobs - r.ref_logprobs).sum(-1)
        kl_mean = kl_seq.mean().item()
        self.kl_ctl.update(kl_mean, cfg.batch_size)
        n_tokens = r.mask.sum().clamp(min=1)
        row = {
            "iteration": len(self.history) + 1, "episodes": (len(self.history) + 1) * cfg.batch_size,
            "objective/scores": r.scores.mean().item(), "objective/rm_score": r.rm_scores.mean().item(),
            "objective/gold": gold.mean().item(), "objective/kl": kl_mean,
            "objective/kl_k3": kl_estimate(r.logprobs, r.ref_logprobs, "k3").mul(r.mask).sum(-1).mean().item(),
            "objective/entropy": (r.entropy.sum() / n_tokens).item(),
            "objective/non_score_reward": r.non_score_rewards.sum(-1).mean().item(), "objective/kl_coef": beta,
            "policy/approxkl_avg": learned["approxkl"], "policy/clipfrac_avg": learned["clipfrac"],
            "policy/ratio_avg": learned["ratio"], "loss/policy_avg": learned["pg"],
            **self.metrics(r, learned),
            "response/length": r.mask.sum(-1).mean().item(), "response/finished": r.finished.float().mean().item(),
            "time/generate": self._t_generate - t0, "time/score": t_score - self._t_generate,
            "time/learn": t_learn - t_score, "time/iteration": time.perf_counter() - t0,
        }
        return self._record(row, prompts, r, gold, kl_seq)

    def _record(self, row: dict, prompts, r: Rollout, gold: torch.Tensor, kl_seq: torch.Tensor) -> dict:
        """Check an iteration's row (a NaN stops the run before anything is saved), warn on a negative
        KL, and append the row and four samples to the history."""
        bad = [k for k, v in row.items() if k.split("/")[0] in ("objective", "policy", "loss") and not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite at iteration {row['iteration']} "
                f"({', '.join(f'{k}={row[k]}' for k in bad)}); stopped before anything was saved: "
                f"{self.remedy.format(lr=self.cfg.lr)}. {self._checkpoint_note()}")
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
        bar = progress_bar(total=total, initial=len(self.history), desc=self.algo.upper(), disable=not progress)
        while len(self.history) < total:
            row = self.iteration()
            bar.update(1)
            bar.set_postfix(score=f"{row['objective/scores']:+.2f}", gold=f"{row['objective/gold']:+.2f}",
                            kl=f"{row['objective/kl']:.2f}")
            if on_iteration is not None:
                on_iteration(self.history)
            every, done = self.cfg.checkpoint_every, len(self.history)
            if self.checkpoint_dir is not None and (done == total or (every and done % every == 0)):
                self.save(self.checkpoint_dir)
        bar.close()
        return self.history

    # -- checkpoints (`rlhf_lab.rl.checkpoints`) -----------------------------------------------------

    def _checkpoint_note(self) -> str:
        return checkpoint_note(self.checkpoint_dir, self.algo)

    def save(self, path) -> Path:
        """Write a resumable checkpoint (`rlhf_lab.rl.checkpoints`): the policy (`load_model(path / "policy")`
        loads it), the value function if any, optimizer, beta, RNG states, prompts, config and history,
        swapped in atomically. Parameters that are not finite are refused before anything is written."""
        self._check_parameters(f"when saving after iteration {len(self.history)}")
        state = {"optimizer": self.optimizer.state_dict(), "kl_coef": self.kl_ctl.value,
                 "torch_rng": torch.get_rng_state(), "generator": self.generator.get_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 **self.extra_state()}
        return write_checkpoint(path, self.policy, self.tokenizer, self.value_function, state, self.cfg,
                                self.prompts, self.history, self.algo)

    @classmethod
    def resume(cls, path, reward_fn: RewardFn | None = None, device=None, **overrides):
        """Rebuild a trainer from `save`'s folder; training continues exactly where it stopped (same
        machine and seed: the same metrics as an uninterrupted run). ``overrides`` change config fields
        (e.g. iterations=40 to go further). Every file of the checkpoint is checked first; a damaged
        one is an `ArtefactError` naming it."""
        path = recover(Path(path))
        cp = read_checkpoint(path, cls.config_cls, **overrides, **({"device": str(device)} if device is not None else {}))
        policy, tokenizer = read_policy(path, get_device(cp["config"].device, verbose=False))
        trainer = cls(cp["config"], cp["prompts"], policy=policy, tokenizer=tokenizer, reward_fn=reward_fn)
        load_value_function(path, trainer.value_function, cp["value"])
        state = cp["state"]
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.kl_ctl.value = state["kl_coef"]
        torch.set_rng_state(state["torch_rng"])
        trainer.generator.set_state(state["generator"])
        trainer.load_extra_state(state)
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        trainer.history = cp["history"]
        trainer.checkpoint_dir = path
        return trainer
