"""Where RL rollouts come from: a backend samples k completions per prompt from the policy.
`TransformersBackend` is the one built (models/group_sampling.py: each prompt prefilled once,
k samples from its cache; transformers' `generate` for LoRA-wrapped or untested models). A vLLM
backend would implement the same `sample` (and reload the policy's weights each step); it is not
built: there is no GPU here to test it on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .group_sampling import Seed, sample_k_per_prompt


@dataclass(frozen=True)
class Samples:
    responses: list[list[int]]  # k per prompt, grouped by prompt; each ends at its stop token
    truncated: list[bool]       # cut at max_new_tokens before any stop token


class RolloutBackend(Protocol):
    name: str

    def sample(self, model, prompts: list[list[int]], k: int, *, seed: Seed) -> Samples: ...


@dataclass(frozen=True)
class TransformersBackend:
    max_new_tokens: int
    temperature: float
    top_p: float
    pad_id: int
    stop_ids: tuple[int, ...]  # the chat template's end of turn and <eos>
    name: str = "transformers"

    def sample(self, model, prompts: list[list[int]], k: int, *, seed: Seed) -> Samples:
        """`seed`: one int, or one per prompt (models/group_sampling.py)."""
        responses = sample_k_per_prompt(model, prompts, k, temperature=self.temperature,
                                        top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                                        seed=seed, pad_id=self.pad_id,
                                        eos_id=list(self.stop_ids))
        return Samples(responses, [not r or r[-1] not in self.stop_ids for r in responses])
