"""The lab's sampler (models/sampling.py: group_sampling's cache path) against transformers'
`generate` on a finished lab run's SFT model: per held-out prompt (repeated to fill a batch of
mixed prompt lengths), one sample from each with the same seed, and the paired difference of
response length and of the sample's log-prob under the model (both should be 0 in expectation:
the same distribution, other draws).

    PYTHONPATH=src python bench/lab_sampling_check.py RUN [--seeds 14] [--first-seed 1900]"""

from __future__ import annotations

import argparse
import statistics as st
from pathlib import Path

import torch

from rlxf.models.build import load_causal_lm
from rlxf.models.generate import sample_response_ids
from rlxf.models.group_sampling import sample_k_per_prompt
from rlxf.models.logprobs import response_batch, sequence_logprobs
from rlxf.models.tokenizer import prompt_ids
from rlxf.rundir import RunDir
from rlxf.stages.context import load_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seeds", type=int, default=14)
    ap.add_argument("--first-seed", type=int, default=1900)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = RunDir(args.run)
    world = load_world(run)
    tok = world.tokenizer
    model = load_causal_lm(run.stage_dir("sft") / "model")
    prompts = [prompt_ids(tok, p.text) for p in world.heldout] * 2
    kw = dict(temperature=1.0, max_new_tokens=40, pad_id=tok.pad_token_id,
              eos_id=tok.eos_token_id)

    def logps(rows):
        with torch.no_grad():
            return sequence_logprobs(model, *response_batch(prompts, rows, tok.pad_token_id))

    lengths, logp = [], []
    for s in range(args.first_seed, args.first_seed + args.seeds):
        g = sample_response_ids(model, prompts, seed=s, **kw)
        c = sample_k_per_prompt(model, prompts, 1, seed=s, **kw)
        lengths += [len(a) - len(b) for a, b in zip(g, c)]
        logp += (logps(g) - logps(c)).tolist()
    for name, d in (("length (tokens)", lengths), ("log-prob (nats)", logp)):
        print(f"generate - cache path, {name}: {st.mean(d):+.3f} ± {st.stdev(d) / len(d) ** .5:.3f}"
              f" (mean ± s.e., n {len(d)} paired samples)")


if __name__ == "__main__":
    main()
