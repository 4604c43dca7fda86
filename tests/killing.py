"""Kill a save at chosen instants or at random ones, and count what was lost.

Used by tests/utils/test_artefacts.py, and runnable on its own for longer loops:

    .venv/bin/python tests/killing.py --kills 100      # random SIGKILLs over PPO and reward-model saves

Each save runs in a forked child (the parent keeps the loaded models, so a round costs a save,
not a Python start). The child either dies by SIGKILL at its N-th file operation (an audit hook
counts them: open, rename, remove, rmdir, mkdir, rmtree, truncate and the atomic exchange) or at
a random instant, chosen by the parent. After each kill the parent checks that the artefact loads
and is the old version or the new one, and that the next save works.
"""
from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import torch

FILE_EVENTS = {"open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate",
               "rlhf_lab.utils.artefacts.exchange"}


def in_child(body, kill_at: int | None = None, fallback: bool = False) -> str:
    """Fork; the child runs ``body()`` and is SIGKILLed at its ``kill_at``-th file operation.
    ``fallback``: the child saves with two renames instead of the atomic exchange.
    Returns "killed" or "done" (the body finished before operation ``kill_at``)."""
    pid = os.fork()
    if pid == 0:   # the child: never returns into the caller (pytest)
        code = 1
        try:
            torch.set_num_threads(1)   # no OpenMP pool after fork
            if fallback:
                import rlhf_lab.utils.artefacts as artefacts
                artefacts.exchange = lambda a, b: False
            if kill_at is not None:
                count = [0]

                def hook(event, args):
                    if event in FILE_EVENTS:
                        count[0] += 1
                        if count[0] == kill_at:
                            os.kill(os.getpid(), signal.SIGKILL)
                sys.addaudithook(hook)
            body()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed"
    assert os.WEXITSTATUS(status) == 0, "the save failed in the child"
    return "done"


def save_in_loop_and_kill(save_marker, max_wait: float, rng: random.Random, base: int) -> int:
    """A child saves markers base, base + 1, ... in a loop and reports each completed save on a
    pipe; the parent SIGKILLs it after a random wait. Returns the last marker reported saved
    (base - 1 if none)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            torch.set_num_threads(1)
            i = base
            while True:
                save_marker(i)
                os.write(write_end, f"{i}\n".encode())
                i += 1
        finally:
            os._exit(1)
    os.close(write_end)
    time.sleep(rng.uniform(0, max_wait))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        done = [int(x) for x in pipe.read().split()]
    return done[-1] if done else base - 1


# ---- the two artefacts -------------------------------------------------------------------

class RewardModelCase:
    """A reward model whose head weight [0, 0] and one backbone weight both hold the marker: a folder
    with the backbone of one save and the head of another loads as neither. (The head's bias is folded
    into the final layer norm when saving, so the marker is in the head's weight.)"""

    name = "reward model"

    def __init__(self, folder: Path):
        from rlhf_lab.reward.model import load_reward_model

        self.out, self.rm = folder / "rm", load_reward_model("tiny-rm", device="cpu")

    def save(self, marker: int) -> None:
        with torch.no_grad():
            self.rm.head.weight[0, 0] = float(marker)
            self.rm.backbone.get_input_embeddings().weight[0, 0] = float(marker)
        self.rm.save_pretrained(self.out, extra={"marker": marker})

    def load(self) -> int | tuple:
        from rlhf_lab.reward.model import RewardModel

        rm = RewardModel.from_pretrained(self.out, device="cpu")
        head, backbone = int(rm.head.weight[0, 0].item()), int(rm.backbone.get_input_embeddings().weight[0, 0].item())
        return head if head == backbone else ("backbone", backbone, "head", head)


class PPOCase:
    """A PPO checkpoint whose beta (kl_coef in trainer_state.pt) is the marker."""

    name = "PPO checkpoint"

    def __init__(self, folder: Path):
        from rlhf_lab.rl.ppo import PPOConfig
        from rlhf_lab.rl.ppo_trainer import PPOTrainer
        from rlhf_lab.world.reviews import ReviewWorld

        cfg = PPOConfig(batch_size=8, mini_batch_size=4, max_new_tokens=8, iterations=1, device="cpu")
        self.out = folder / "ppo"
        self.trainer = PPOTrainer(cfg, ReviewWorld(0).prompts(16, kind="mixed", split="train"))
        self.trainer.train(iterations=1, progress=False)   # a real optimizer state to save

    def save(self, marker: int) -> None:
        self.trainer.kl_ctl.value = float(marker)
        self.trainer.save(self.out)

    def load(self) -> int:
        from rlhf_lab.lm.models import load_model
        from rlhf_lab.rl.checkpoints import read_checkpoint
        from rlhf_lab.rl.ppo import PPOConfig

        cp = read_checkpoint(self.out, PPOConfig)   # every file but the policy's weights, checked
        load_model(str(self.out / "policy"), role="reference", device="cpu")
        return int(cp["state"]["kl_coef"])


def leftovers(case) -> list[str]:
    """Hidden staging or old copies beside the artefact."""
    return sorted(p.name for p in case.out.parent.iterdir() if p.name.startswith(f".{case.out.name}."))


def random_kills(case, kills: int, seed: int = 0) -> dict:
    """``kills`` rounds: save in a loop in a child, SIGKILL it at a random instant, check the
    artefact is the last reported save or the one in progress, then save once more here.
    Returns counts (``lost``: rounds where the artefact did not load or was neither version)."""
    rng = random.Random(seed)
    case.save(0)
    t = time.perf_counter()
    case.save(0)
    one_save = time.perf_counter() - t
    stats = {"kills": 0, "lost": 0, "new": 0, "old": 0, "failed_next_save": 0, "one_save_s": round(one_save, 3)}
    saved = 0   # the marker of the last save known complete
    for k in range(kills):
        base = (k + 1) * 1000
        last = save_in_loop_and_kill(case.save, max_wait=4 * one_save + 0.05, rng=rng, base=base)
        stats["kills"] += 1
        old = last if last >= base else saved      # the last save the child reported complete
        new = old + 1 if last >= base else base    # the save it was killed in
        try:
            found = case.load()
        except Exception as err:   # noqa: BLE001 - any failure to load is a lost artefact
            print(f"round {k}: the artefact did not load: {err}", file=sys.stderr)
            found = None
        if found in (old, new):
            stats["old" if found == old else "new"] += 1
        else:
            print(f"round {k}: found marker {found}, expected {old} or {new}", file=sys.stderr)
            stats["lost"] += 1
        try:
            case.save(base + 999)
            assert case.load() == base + 999
            saved = base + 999
        except Exception as err:   # noqa: BLE001
            print(f"round {k}: the next save failed: {err}", file=sys.stderr)
            stats["failed_next_save"] += 1
    stats["leftovers_after"] = leftovers(case)
    return stats


if __name__ == "__main__":
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=50, help="random kills per artefact (default 50)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for cls in (PPOCase, RewardModelCase):
            case = cls(Path(tmp))
            t = time.perf_counter()
            res = random_kills(case, args.kills, args.seed)
            print(f"{case.name}: {res} ({time.perf_counter() - t:.0f} s)")
