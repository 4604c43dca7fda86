"""rlhf-lab: a teaching kit for Reinforcement Learning from Human Feedback."""

__version__ = "0.1.0"
