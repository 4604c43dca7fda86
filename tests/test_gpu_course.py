"""The gpu course, chain included, top to bottom on the CPU at smoke sizes (notebooks 00-10).

``RLHF_LAB_PROFILE=gpu RLHF_LAB_SMOKE=1`` with the hub-shaped GPT-2 of tests/hub_gpt2.py as the
chain's base (``RLHF_LAB_BASE``): notebook 00 fine-tunes it into the chain's SFT model, 02 makes its
labels, 03 its reward model, and 04-07 stand on them. One kernel runs the notebooks in order and
clears its namespace (``%reset -f``) between them, so that no notebook sees another's variables; after
each notebook a probe cell reports what it loaded (`rlhf_lab.utils.artefacts.LOADS` since the last probe), which must all be
the chain's own, and the chain's fingerprints, which must not change once made.
"""
import json
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[01][0-9]_*.ipynb"))

# What each notebook must show besides its loads: a Python expression evaluated after its last cell.
EXTRA = {
    "05": 'history["objective/kl"][0]',                         # PPO's first batch: policy == reference
    "06": '[history.metrics[0][k] for k in ("rewards/chosen", "rewards/rejected")]',   # DPO's first step
    "07": 'ppo_points[0]["kl"]',                                 # the reference against itself
}
PROBE = """
import json as _json, os as _os
from rlhf_lab.utils import artefacts as _artefacts
from rlhf_lab import course as _course
_loaded = _artefacts.LOADS.since(int(_os.environ.get("PROBE_MARK", "0")))   # this notebook's loads
_os.environ["PROBE_MARK"] = str(_artefacts.LOADS.mark())                     # kept across the namespace reset
print("PROBE " + _json.dumps({"foreign": _course.foreign_loads(profile, _loaded), "loaded": _loaded,
                              "chain": _json.loads(_course.chain_record(profile)), "model_name": profile.model_name,
                              "smoke": profile.smoke, "extra": %s}))
"""
RESET = "get_ipython().run_line_magic('reset', '-f')\nimport matplotlib.pyplot as _plt\n_plt.close('all')"


def _probe(cell) -> dict:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    line = next(x for x in text.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def test_the_gpu_course_runs_on_its_own_chain(hub_gpt2, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    runs = tmp_path / "runs"
    for key, value in {"RLHF_LAB_PROFILE": "gpu", "RLHF_LAB_SMOKE": "1", "RLHF_LAB_BASE": hub_gpt2,
                       "RLHF_LAB_RUNS": str(runs), "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RLHF_LAB_MODEL", raising=False)
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(11)]
    first = nbformat.read(NOTEBOOKS[0], as_version=4)
    client = NotebookClient(first, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS[0].parent)}})
    probes = {}
    with client.setup_kernel(env=dict(os.environ)):
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            tag = path.name[:2]
            nb.cells.append(nbformat.v4.new_code_cell(PROBE % EXTRA.get(tag, "None")))
            nb.cells.append(nbformat.v4.new_code_cell(RESET))
            client.nb = nb
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)   # raises CellExecutionError naming the cell
            probes[tag] = _probe(nb.cells[-2])

    sft, labels, rm = (str(runs / "gpu" / x) for x in ("sft", "preferences/simulated.jsonl", "reward_model"))
    fingerprints = probes["08"]["chain"]
    assert [fingerprints[x]["path"] for x in ("sft", "labels", "reward_model")] == [sft, labels, rm]
    assert all(fingerprints[x]["fingerprint"] for x in fingerprints)           # every link was made
    for tag, probe in probes.items():
        assert probe["smoke"] and probe["model_name"] == sft, tag
        assert probe["foreign"] == [], (tag, probe["foreign"])                 # nothing but the chain was loaded
        loaded = {kind: {p for k, p in probe["loaded"] if k == kind} for kind in ("model", "reward_model", "labels")}
        if tag != "00":
            assert sft in loaded["model"], (tag, loaded)                       # the chain's SFT model is the policy
        if tag in ("05", "06", "07", "08"):
            assert loaded["reward_model"] == {rm}, (tag, loaded)             # r_phi is the chain's
        if tag in ("03", "06", "07", "08"):
            assert loaded["labels"] == {labels}, (tag, loaded)               # and so are the labels
        if tag == "02":   # and those notebook 02 ranks itself, from the chain's SFT model (foreign == [])
            assert labels in loaded["labels"], (tag, loaded)
        if tag >= "03":   # made once, then only read: the same bytes in every later notebook
            for link in ("sft", "labels", "reward_model"):
                assert probe["chain"][link] == fingerprints[link], (tag, link)
    assert hub_gpt2 in {p for k, p in probes["00"]["loaded"] if k == "model"}   # 00 fine-tuned the hub-shaped base
    assert probes["05"]["extra"] == 0.0                                         # PPO's step-0 KL, exactly
    assert probes["06"]["extra"] == [0.0, 0.0]                                  # DPO's step-0 implicit rewards
    assert probes["07"]["extra"] == 0.0
    meta = json.loads((runs / "gpu" / "preferences" / "metadata.json").read_text())
    assert meta["model"] == sft                                                 # labels sampled from the chain's SFT
    rm_meta = json.loads((runs / "gpu" / "reward_model" / "reward_config.json").read_text())
    assert rm_meta["backbone"] == sft and rm_meta["labels"] == labels and rm_meta["config"]["lr"] == 1e-5


@pytest.mark.parametrize("link", ["sft", "labels", "reward_model"])
def test_a_missing_link_names_the_notebook_and_the_command(link, tmp_path, monkeypatch):
    from rlhf_lab import course
    from rlhf_lab.config import Profile

    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    profile = Profile.gpu()
    for earlier in course.LINKS[:course.LINKS.index(link)]:   # the links before it are there
        where = Path(course.link_path(profile, earlier))
        marker = where if earlier == "labels" else where / "config.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("{}")
        assert course.is_built(profile, earlier)
    with pytest.raises(course.ChainError, match=f"{course.MADE_BY[link].split(' (')[0]}.*rlhf-lab prepare --profile gpu"):
        course.ensure(profile, link, build=False)


def test_preset_is_the_profile_preset_on_its_chain(tmp_path, monkeypatch):
    from rlhf_lab import course
    from rlhf_lab.config import Profile
    from rlhf_lab.rl.dpo import DPOConfig
    from rlhf_lab.rl.ppo import PPOConfig
    from rlhf_lab.reward.train import RewardConfig

    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    cpu, gpu = Profile.cpu(), Profile.gpu()
    assert course.preset(cpu, PPOConfig) == PPOConfig.tiny()           # the cpu chain is the tiny presets' own
    assert course.preset(cpu, RewardConfig) == RewardConfig.tiny()
    ppo = course.preset(gpu, PPOConfig)
    assert (ppo.model, ppo.reward_model) == (gpu.model_name, gpu.reward_model) != ("tiny", "tiny-rm")
    assert ppo.lr == PPOConfig.gpu().lr == 1.41e-5
    assert course.preset(gpu, RewardConfig).backbone == gpu.model_name
    assert course.preset(gpu, DPOConfig, beta=0.3).lr == DPOConfig.gpu().lr == 1e-6
    smoke = course.preset(gpu.shrunk(), PPOConfig, iterations=24, kl_coef=0.0)
    assert (smoke.iterations, smoke.batch_size, smoke.kl_coef, smoke.lr) == (2, 4, 0.0, 1.41e-5)  # sizes capped only
    with pytest.raises(ValueError, match="PPOConfig has no field itrations"):
        course.preset(gpu, PPOConfig, itrations=3)


def test_foreign_loads_name_what_is_not_the_chain(tmp_path, monkeypatch):
    from rlhf_lab import course
    from rlhf_lab.config import Profile, data_dir

    monkeypatch.setenv("RLHF_LAB_RUNS", str(tmp_path / "runs"))
    gpu = Profile.gpu()
    loaded = [("model", gpu.model_name), ("reward_model", gpu.reward_model), ("labels", gpu.labels),
              ("model", str(tmp_path / "runs" / "ppo" / "policy")),
              ("model", str(data_dir() / "models" / "tiny-sft")), ("reward_model", str(data_dir() / "models" / "tiny-rm")),
              ("labels", str(data_dir() / "preferences" / "simulated.jsonl"))]
    assert course.foreign_loads(gpu, loaded) == loaded[4:]             # the tiny model's artefacts are foreign
    assert course.foreign_loads(Profile.cpu(), loaded[4:]) == []       # and the cpu chain's own
    # labels a notebook ranks itself count as the chain's when they rank the chain's SFT model's completions
    from rlhf_lab.labels.store import PreferenceRecord, PreferenceStore
    own, other = tmp_path / "own.jsonl", tmp_path / "other.jsonl"
    for path, model in ((own, gpu.model_name), (other, "tiny")):
        PreferenceStore(path).append(PreferenceRecord(prompt_id="p", prompt="x", completions=[" a.", " b."],
                                                      ranking=[1, 0], labeler="ada", source="human", model=model))
    assert course.foreign_loads(gpu, [("labels", str(own)), ("labels", str(other))]) == [("labels", str(other))]
