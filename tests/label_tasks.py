"""Ranking tasks written by hand, for the ranker and class-labeling tests (no model needed)."""
from rlhf_lab.labels.preferences import LabelTask
from rlhf_lab.world.reviews import ReviewWorld, judge_completion

POOL = [" The plot is brilliant.", " The plot is dull.", " The plot is fine, but the ending drags.",
        " I loved the plot.", " The plot is not bad.", " The acting is wooden."]


def make_tasks(n=5, k=4):
    """n instruction prompts, each with k distinct completions from POOL and their gold scores."""
    tasks = []
    for i, p in enumerate(ReviewWorld(0).instruction_prompts(n)):
        completions = tuple(POOL[(i + j) % len(POOL)] for j in range(k))
        tasks.append(LabelTask(p, completions, tuple(judge_completion(p, c).gold for c in completions), "tiny"))
    return tasks
