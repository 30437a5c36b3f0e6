"""CPU seconds of each piece of a GRPO step, the previous path beside rlxf's, on the bench's
first batch (4 prompts x 8 completions, at most 32 new tokens, one thread):

    PYTHONPATH=src .venv/bin/python bench/grpo_pieces.py 1m

The throughput comparison with TRL is run.py; this only says where a step's time goes. On a
shared machine the pieces vary by ~10% between runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.workload import build  # noqa: E402
from rlxf.models.fused_ops import fuse_activations  # noqa: E402
from rlxf.models.generate import sample_response_ids  # noqa: E402
from rlxf.models.group_sampling import prompt_seeds, sample_groups  # noqa: E402
from rlxf.models.logprobs import group_response_logprobs, response_batch, token_logprobs  # noqa: E402


def cpu_seconds(f, n: int = 4) -> float:
    f()  # warm-up
    start = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - start) / n


def main(model_name: str) -> None:
    torch.set_num_threads(1)
    w = build(model_name, 512, 24, 32, 0)
    m, prompts = w.causal_lm(), w.prompts[:4]
    repeated = [p for p in prompts for _ in range(8)]
    kw = dict(temperature=1.0, max_new_tokens=32, seed=0, pad_id=w.pad_id, eos_id=w.eos_id)
    resp = sample_groups(m, prompts, 8, **kw)
    ids, att, _ = response_batch(repeated, resp, w.pad_id)
    per_prompt = {**kw, "seed": prompt_seeds(0, range(len(prompts)))}  # GRPO's (any split)
    pieces = {"sampling, generate on repeated prompts": lambda: sample_response_ids(m, repeated, **kw),
              "sampling, sample_groups": lambda: sample_groups(m, prompts, 8, **kw),
              "sampling, sample_groups, a seed per prompt":
                  lambda: sample_groups(m, prompts, 8, **per_prompt)}
    for name, f in pieces.items():
        print(f"{name:45s} {cpu_seconds(f):.3f}")
    with torch.no_grad():
        print(f"{'log-probs, full forward':45s} {cpu_seconds(lambda: token_logprobs(m, ids, att)):.3f}")
        print(f"{'log-probs, shared prefix':45s} "
              f"{cpu_seconds(lambda: group_response_logprobs(m, prompts, resp, w.pad_id)):.3f}")
    m.train()
    print(f"{'fwd+bwd, full forward':45s} "
          f"{cpu_seconds(lambda: token_logprobs(m, ids, att).sum().backward()):.3f}")
    shared = lambda: group_response_logprobs(m, prompts, resp, w.pad_id)[0].sum().backward()  # noqa: E731
    print(f"{'fwd+bwd, shared prefix':45s} {cpu_seconds(shared):.3f}")
    fuse_activations(m)
    print(f"{'fwd+bwd, shared prefix, fused GELU':45s} {cpu_seconds(shared):.3f}")
    m.eval()
    print(f"{'sampling, sample_groups, fused GELU':45s} "
          f"{cpu_seconds(lambda: sample_groups(m, prompts, 8, **kw)):.3f}")
    # each token through the model's forward (before models/decode_step.py) and through the
    # lean step, as `rlxf grpo` samples (a seed per prompt, fused GELU), alternated
    lean, forward = (lambda: sample_groups(m, prompts, 8, **per_prompt)), \
        _through_forward(lambda: sample_groups(m, prompts, 8, **per_prompt))
    times = {"lean": [], "forward": []}
    for _ in range(3):
        times["forward"].append(cpu_seconds(forward))
        times["lean"].append(cpu_seconds(lean))
    print(f"{'sampling, per-token model forward (3 runs)':45s} "
          f"{' '.join(f'{t:.3f}' for t in times['forward'])}")
    print(f"{'sampling, per-token lean step (3 runs)':45s} "
          f"{' '.join(f'{t:.3f}' for t in times['lean'])}")


def _through_forward(f):
    """`f` with group sampling's lean per-token step switched off (the model's forward)."""
    import rlxf.models.group_sampling as group_sampling

    def run():
        lean, group_sampling.decode_step = group_sampling.decode_step, lambda *a: None
        try:
            return f()
        finally:
            group_sampling.decode_step = lean
    return run


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "1m")
