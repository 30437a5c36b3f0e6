"""The lab's GRPO (train/group_rl.py) on a tiny float64 GPT-2, for tests/test_policy_distributed.py:
run as a job of tests/dist_jobs.py alone, or by `accelerate launch --num_processes 2` with
grad_accum 2 (tests/dist_launch.py), it writes the final parameters from the main process to
OUT (torch.save). 8 prompts x 4 samples per step, rewarded for token 4."""

import sys
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlxf.config import GroupRLConfig, PolicyConfig
from rlxf.train.group_rl import train_group_rl
from rlxf.train.loop import Checkpointer
from rlxf.train.policy_loop import default_accelerator

VOCAB, PAD, BOS, EOS = 12, 0, 1, 2


def model():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                      pad_token_id=PAD, bos_token_id=BOS,
                                      eos_token_id=EOS)).double()


def main(out: str) -> None:
    torch.set_num_threads(1)
    accelerator = default_accelerator()
    grad_accum = accelerator.num_processes  # 2 processes x 2 micro-batches against 1 x 1
    cfg = PolicyConfig(algorithm="grpo", steps=3, batch_size=8, lr=1e-2, warmup_steps=0,
                       grad_accum=grad_accum, device="cpu",
                       group=GroupRLConfig(group_size=4, kl_coef=0.1))
    prompts = [[BOS, 3 + i % 7] for i in range(16)]
    policy = model()
    with tempfile.TemporaryDirectory() as ckpt:
        train_group_rl(policy, model(), prompts,
                       lambda ps, rs: [float(r.count(4)) - 0.1 * len(r) for r in rs], cfg,
                       PAD, EOS, max_new_tokens=4, seed=0,
                       ckpt=Checkpointer(Path(ckpt), every=1000), accelerator=accelerator)
    if accelerator.is_main_process:
        torch.save({"processes": accelerator.num_processes,
                    "params": torch.cat([p.detach().flatten() for p in policy.parameters()])},
                   out)


if __name__ == "__main__":
    main(*sys.argv[1:])
