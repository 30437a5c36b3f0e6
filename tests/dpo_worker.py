"""One DPO run on a tiny model and fixed pairs, for tests/test_policy_distributed.py: run as a
script or as a job of tests/dist_jobs.py (alone, or by `accelerate launch --num_processes 2`;
tests/dist_launch.py), it writes, from the main process,
each step's reported loss (EMA of the mean over processes) and the final parameters to OUT (torch.save)."""

import sys
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlxf.config import PolicyConfig
from rlxf.train.dpo import reference_logprobs, train_dpo
from rlxf.train.loop import Checkpointer
from rlxf.train.policy_loop import default_accelerator

VOCAB, PAD = 12, 0


def pairs(n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda k: (torch.randint(1, VOCAB, (k,), generator=g)).tolist()  # noqa: E731
    return [(rand(3), rand(int(torch.randint(1, 5, (1,), generator=g))),
             rand(int(torch.randint(1, 5, (1,), generator=g)))) for _ in range(n)]


def model():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                      pad_token_id=PAD))


def main(out: str, algorithm: str = "dpo") -> None:
    torch.set_num_threads(1)
    accelerator = default_accelerator()
    data = pairs()
    reference, policy = model(), model()
    ref_c, ref_r = reference_logprobs(reference, data, PAD)
    cfg = PolicyConfig(algorithm=algorithm, steps=4, batch_size=8, lr=1e-2, warmup_steps=0)
    losses = []
    with tempfile.TemporaryDirectory() as ckpt:
        train_dpo(policy, data, ref_c, ref_r, cfg, PAD, seed=0,
                  ckpt=Checkpointer(Path(ckpt), every=1000),
                  on_step=lambda step, m: losses.append(m[f"loss/{algorithm}"]),
                  accelerator=accelerator)
    if accelerator.is_main_process:
        torch.save({"processes": accelerator.num_processes, "losses": losses,
                    "params": torch.cat([p.detach().flatten() for p in policy.parameters()])},
                   out)


if __name__ == "__main__":
    main(*sys.argv[1:])
