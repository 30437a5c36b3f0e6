"""The GRPO-from-files row's reward function, with TRL's reward-function signature: `rlxf grpo
... --reward bench/grpo_reward.py:even_tokens` loads it from this file, and TRL's GRPOTrainer gets
the same function loaded from the same file. What each side sampled is recorded in
`bench.workload.SAMPLED` (one list in the harness process, whichever module object the file was
loaded into), so the harness can report completion lengths and check that both sides were
given the same prompts."""

from bench.workload import SAMPLED, even_token_reward


def even_tokens(prompts, completions, completion_ids, **kwargs):
    SAMPLED.extend(zip(prompts, map(len, completion_ids)))
    return [even_token_reward(ids) for ids in completion_ids]
