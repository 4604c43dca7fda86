"""README "Past one GPU": the commands it prints, run as far as a CPU-only machine allows.

Each ``trl`` command of that section is checked twice: as printed (8 processes), through TRL's own
CLI parser and ``accelerate launch``'s parser, which must accept every option; and run for real on
the tiny model in one CPU process for a step or two (the same options, with the GPU-only ones
replaced). The folders TRL writes must load in the kit.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lab.config import data_dir, repo_root
from rlhf_lab.labels.preferences import load_preferences

README = repo_root() / "README.md"


def _require_trl():
    try:
        import trl  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("trl is missing in CI: .ci/run installs the trl extra (pip install -e '.[trl]')")
        pytest.skip("the trl extra is not installed (pip install -e '.[trl]')")


def readme_commands() -> list[str]:
    """The command lines of the README's "Past one GPU" code block, in order."""
    text = README.read_text()
    section = text.split("### Past one GPU", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def split_env(line: str) -> tuple[dict, list[str]]:
    words = shlex.split(line)
    env = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    return env, words


def test_the_readme_prints_the_export_and_the_trl_commands():
    lines = readme_commands()
    assert [split_env(x)[1][:2] for x in lines] == [["rlhf-lab", "labels"], ["rlhf-lab", "labels"],
                                                     ["trl", "reward"], ["trl", "grpo"]]
    assert "--reward_funcs rlhf_lab.interop.kit_reward_model" in lines[-1]


@pytest.mark.parametrize("index", [2, 3])
def test_the_printed_multi_gpu_command_is_one_trl_and_accelerate_accept(index, monkeypatch):
    _require_trl()
    import transformers.training_args
    from accelerate.commands.launch import launch_command_parser
    from trl.cli.accelerate_config import resolve_accelerate_config_argument
    from trl.cli.commands.training import _subtract_subsequence

    # parsed as on the GPU machine the command is for: its configs check that bf16 is available there
    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)
    env, words = split_env(readme_commands()[index])
    name, args = words[1], words[2:]
    module = __import__(f"trl.scripts.{name}", fromlist=["make_parser"])
    parser = module.make_parser(prog=f"trl {name}")
    # exactly what `trl <name>` does before it launches (trl/cli/commands/training.py)
    *parsed, config_rest, cli_rest = parser.parse_args_and_config(args, return_remaining_strings=True,
                                                                  separate_remaining_strings=True)
    launch = launch_command_parser().parse_args(resolve_accelerate_config_argument(config_rest + cli_rest)
                                                + ["script.py"] + _subtract_subsequence(args, cli_rest))
    assert launch.num_processes == 8 and launch.config_file.endswith("multi_gpu.yaml")
    script_args, training_args, model_args = parsed[:3]
    assert model_args.model_name_or_path == "runs/gpu/sft" and script_args.dataset_name.startswith("export/")
    if name == "grpo":
        assert script_args.reward_funcs == ["rlhf_lab.interop.kit_reward_model"]
        assert env == {"RLHF_LAB_REWARD_MODEL": "runs/gpu/reward_model"} and training_args.beta == 0.05


def _on_this_machine(line: str, tmp: Path) -> tuple[dict, list[str]]:
    """The README's command with the gpu course's folders replaced by the tiny model's and the
    GPU options by one CPU process and a step or two."""
    swap = {"runs/gpu/sft": str(data_dir() / "models" / "tiny-sft"),
            "runs/gpu/reward_model": str(data_dir() / "models" / "tiny-rm"),
            "pooled.jsonl": str(tmp / "pooled.jsonl"), "export/": f"{tmp}/export/", "runs/trl/": f"{tmp}/trl/"}
    env, words = split_env(line)
    out = []
    for w in words:
        for a, b in swap.items():
            w = w.replace(a, b) if w.startswith(a) or w == a else w
        out.append(w)
    env = {k: swap.get(v, v) for k, v in env.items()}
    if out[0] == "trl":
        i = out.index("--accelerate_config")
        del out[i:i + 2]
        out[out.index("--num_processes") + 1] = "1"
        out += ["--use_cpu", "--bf16", "false", "--max_steps", "2" if out[1] == "reward" else "1",
                "--per_device_train_batch_size", "4", "--save_strategy", "no"]
        if out[1] == "grpo":
            out += ["--max_completion_length", "12"]
        out[0] = str(Path(sys.executable).parent / "trl")
    else:
        out[0] = str(Path(sys.executable).parent / "rlhf-lab")
    return env, out


def test_the_commands_run_on_the_tiny_model_and_their_folders_load_in_the_kit(tmp_path):
    _require_trl()
    from rlhf_lab.lm.models import load_model
    from rlhf_lab.labels.pooling import write_pool
    from rlhf_lab.reward.model import RewardModel

    write_pool(load_preferences(labeler="sim-gold")[:64], tmp_path / "pooled.jsonl")
    for line in readme_commands():
        env, cmd = _on_this_machine(line, tmp_path)
        run = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, **env, "HF_DATASETS_CACHE": str(tmp_path / "hf")},
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    rm = RewardModel.from_pretrained(tmp_path / "trl" / "reward_model", device="cpu")
    scores = rm.score(["The plot is"] * 2, [" brilliant.", " dull."])
    assert scores.shape == (2,) and bool(scores.isfinite().all())
    policy, _ = load_model(str(tmp_path / "trl" / "grpo"), device="cpu")
    assert sum(p.numel() for p in policy.parameters()) > 0


def test_kit_reward_model_scores_as_the_kit_and_trls_model_path_would_not():
    """Why the README gives TRL the kit's scoring: TRL scores a reward model without the EOS."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lab import interop
    from rlhf_lab.reward.model import load_reward_model

    records = load_preferences(labeler="sim-gold")[:32]
    prompts = [r.prompt for r in records for _ in r.completions]
    completions = [c for r in records for c in r.completions]
    kit = np.array(interop.kit_reward_model(prompts, completions))
    np.testing.assert_allclose(kit, load_reward_model("tiny-rm", device="cpu").score(prompts, completions).numpy(),
                               atol=1e-6)
    folder = data_dir() / "models" / "tiny-rm"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():     # what TRL's GRPOTrainer does with a reward model (no EOS appended)
        batch = tok([p + c for p, c in zip(prompts, completions)], return_tensors="pt", padding=True,
                    padding_side="right", add_special_tokens=False)
        trl_way = model(**batch).logits[:, 0].numpy()
    assert np.abs(kit - trl_way).mean() > 0.2
    with pytest.raises(ValueError, match="conversational"):
        interop.kit_reward_model([[{"role": "user", "content": "x"}]], [" y"])
