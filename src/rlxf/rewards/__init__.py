"""Reward sources for RL from files (`rlxf grpo|rloo|ppo --reward SPEC`): Python functions with
TRL's reward-function signature, reward-model directories, the AI judge with a constitution, and
the lab world's gold judge. Each scores a `RewardBatch` to one float (or None) per completion;
`combine.py` weights them into the reward the policy maximises (docs/REAL_MODELS.md)."""
