"""rlxf: reinforcement learning from human and AI feedback that measures its own failure modes."""

__version__ = "0.1.0"
