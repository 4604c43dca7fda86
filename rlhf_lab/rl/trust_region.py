"""From the policy gradient to PPO: importance sampling, the surrogate, the trust region, clipping.

Notebook 04's policy gradient, g = E_{y ~ pi_theta}[A(y) grad log pi_theta(y)], needs fresh samples
from pi_theta for every step. To take several steps on one batch sampled from pi_old, rewrite the
expectation with importance sampling (Schulman et al. 2015, TRPO §3):

    E_{y ~ pi_theta}[A(y) f(y)] = E_{y ~ pi_old}[rho(y) A(y) f(y)],   rho = pi_theta(y) / pi_old(y).

The **surrogate objective** L(theta) = E_{y ~ pi_old}[rho(y) A(y)] has grad L = E_old[rho A grad log pi_theta],
because grad rho = rho grad log pi_theta; at theta = theta_old (rho = 1) this is exactly the policy
gradient. Away from theta_old the surrogate is a first-order model of the true objective, trustworthy
only near pi_old: TRPO maximises it subject to a **trust region** KL(pi_old || pi_theta) <= delta,
which needs second-order machinery. PPO (Schulman et al. 2017, eq. 7) replaces the constraint with a
cheap stand-in, the clipped objective

    L_clip = E_old[min(rho A, clip(rho, 1 - eps, 1 + eps) A)],

whose gradient is zero for a sample once rho has left [1 - eps, 1 + eps] in the direction its
advantage pushes: the incentive to move further goes, but nothing bounds rho itself (a step on
other samples can still move it). `rlhf_lab.rl.ppo.clipped_policy_loss` is the per-token version.
"""
from __future__ import annotations

import torch

from rlhf_lab.rl.ppo import policy_loss


def surrogate(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """L(theta) = mean of rho * A over samples drawn from pi_old; rho = exp(logp_new - logp_old). All (N,)."""
    return (torch.exp(logp_new - logp_old) * advantages).mean()


def clipped_surrogate(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      eps: float = 0.2) -> torch.Tensor:
    """PPO's L_clip = mean of min(rho A, clip(rho, 1 - eps, 1 + eps) A) (Schulman et al. 2017, eq. 7):
    minus the loss PPO trains with, `ppo.policy_loss`, on N one-token episodes."""
    loss, _ = policy_loss(logp_new[None], logp_old[None], advantages[None], torch.ones_like(advantages)[None], eps)
    return -loss


def gradients_at_old_policy(logits: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor,
                            eps: float = 0.2) -> dict[str, torch.Tensor]:
    """The three gradients of a categorical policy softmax(logits) at theta = theta_old, on the same samples.

    logits: (V,) the policy's parameters; actions: (N,) samples from it; advantages: (N,).
    Returns ``policy_gradient`` (mean A grad log pi, notebook 04), ``surrogate`` (grad of `surrogate`)
    and ``clipped`` (grad of `clipped_surrogate`), each (V,). All three are equal: rho = 1 everywhere.
    """
    def grad(objective) -> torch.Tensor:
        theta = logits.detach().clone().requires_grad_(True)
        logp = torch.log_softmax(theta, -1)[actions]
        objective(logp, logp.detach()).backward()
        return theta.grad

    return {"policy_gradient": grad(lambda logp, old: (advantages * logp).mean()),
            "surrogate": grad(lambda logp, old: surrogate(logp, old, advantages)),
            "clipped": grad(lambda logp, old: clipped_surrogate(logp, old, advantages, eps))}


def clipped_objective_curve(ratios: torch.Tensor, advantage: float, eps: float = 0.2) -> tuple:
    """(rho * A, min(rho A, clip(rho) A), d/d rho of the clipped one) for one sample at each rho: what
    the notebook plots. The slope is A inside the band and 0 outside on the side A pushes towards."""
    ratios = ratios.detach().clone().requires_grad_(True)
    a = torch.full_like(ratios, advantage)
    clipped = torch.minimum(ratios * a, ratios.clamp(1 - eps, 1 + eps) * a)
    slope, = torch.autograd.grad(clipped.sum(), ratios)
    return (ratios * a).detach(), clipped.detach(), slope
