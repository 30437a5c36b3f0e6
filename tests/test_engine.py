"""The training engine (train/engine.py): gradient accumulation in float64 -- 4 micro-batches of 4
take the same step as one batch of 16 (SFT, reward model, DPO, KTO, GRPO with whole groups) -- and
bf16 mixed precision tracking fp32 on the same tiny models; errors name what to change."""

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from rlxf.config import GroupRLConfig, PolicyConfig, TrainConfig
from rlxf.train.dpo import reference_logprobs, train_dpo
from rlxf.train.engine import Engine, resolve_precision
from rlxf.train.group_rl import train_group_rl
from rlxf.train.kto import reference_example_logprobs, train_kto
from rlxf.train.lm import train_lm
from rlxf.train.loop import Checkpointer
from rlxf.train.reward import train_reward_model

VOCAB, PAD, BOS, EOS = 12, 0, 1, 2


def _config(**extra) -> dict:
    return dict(vocab_size=VOCAB, n_positions=24, n_embd=16, n_layer=1, n_head=2,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                bos_token_id=BOS, eos_token_id=EOS, **extra)


def lm(dtype=torch.float64):
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**_config())).to(dtype)


def scorer(dtype=torch.float64):
    torch.manual_seed(0)
    return GPT2ForSequenceClassification(GPT2Config(**_config(num_labels=1))).to(dtype)


def _rand(g, k):
    return torch.randint(3, VOCAB, (k,), generator=g).tolist()


def demonstrations(n=32):
    """(ids, first trained index): prompts and responses of different lengths, so micro-batches
    hold different numbers of trained tokens (the token mean must still be the global one)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        p, r = _rand(g, int(torch.randint(1, 4, (1,), generator=g))), \
            _rand(g, int(torch.randint(1, 7, (1,), generator=g)))
        out.append((p + r, len(p)))
    return out


def pairs(n=32):
    g = torch.Generator().manual_seed(2)
    return [(_rand(g, 3), _rand(g, int(torch.randint(1, 5, (1,), generator=g))),
             _rand(g, int(torch.randint(1, 5, (1,), generator=g)))) for _ in range(n)]


def params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().double() for p in model.parameters()])


def run(recipe: str, tmp_path, grad_accum: int = 1, precision: str = "fp32",
        dtype=torch.float64, steps: int = 3):
    """One recipe for `steps` steps of 16 examples; (final parameters, per-step metrics)."""
    torch.set_num_threads(1)
    seen: list[dict] = []
    ckpt = Checkpointer(tmp_path / f"{recipe}-{grad_accum}-{precision}", 1000)
    common = dict(steps=steps, batch_size=16, lr=1e-2, warmup_steps=0, grad_accum=grad_accum,
                  precision=precision, device="cpu")
    on_step = lambda step, m: seen.append(dict(m))  # noqa: E731
    if recipe == "sft":
        model = lm(dtype)
        train_lm(model, demonstrations(), TrainConfig(**common), PAD, 0, ckpt, on_step)
    elif recipe == "reward":
        model = scorer(dtype)
        train_reward_model(model, pairs(), TrainConfig(**common), PAD, 0, ckpt, on_step)
    elif recipe == "dpo":
        model, data = lm(dtype), pairs()
        ref_c, ref_r = reference_logprobs(lm(dtype), data, PAD)
        train_dpo(model, data, ref_c, ref_r, PolicyConfig(**common), PAD, 0, ckpt, on_step)
    elif recipe == "kto":  # z_ref is the whole batch's, whatever the micro-batches
        model, reference = lm(dtype), lm(dtype)
        data = [(p, c if i % 3 else r, i % 3 > 0) for i, (p, c, r) in enumerate(pairs())]
        ref = reference_example_logprobs(reference, data, PAD)
        train_kto(model, reference, data, ref, PolicyConfig(algorithm="kto", **common), PAD, 0,
                  ckpt, on_step)
    else:  # GRPO: 4 prompts of 4 samples per micro-batch (whole groups), rewarded by token 4
        model = lm(dtype)
        cfg = PolicyConfig(algorithm="grpo", group=GroupRLConfig(group_size=4, kl_coef=0.1),
                           **common)
        prompts = [[BOS, 3 + i % 5] for i in range(32)]
        reward = lambda ps, rs: [float(r.count(4)) - 0.1 * len(r) for r in rs]  # noqa: E731
        train_group_rl(model, lm(dtype), prompts, reward, cfg, PAD, EOS, max_new_tokens=4,
                       seed=0, ckpt=ckpt, on_step=on_step)
    return model, seen


@pytest.mark.parametrize("recipe", ["sft", "reward", "dpo", "kto", "grpo"])
def test_four_micro_batches_of_four_take_the_step_of_one_batch_of_sixteen(tmp_path, recipe):
    whole, whole_metrics = run(recipe, tmp_path, grad_accum=1)
    micro, _ = run(recipe, tmp_path, grad_accum=4)
    init = params(lm() if recipe != "reward" else scorer())
    assert (params(whole) - init).abs().max() > 1e-3  # training moved the parameters
    assert (params(whole) - params(micro)).abs().max() < 1e-10
    assert all(torch.isfinite(torch.tensor(list(m.values()))).all() for m in whole_metrics)


def test_micro_batches_that_do_not_split_evenly_name_the_keys(tmp_path):
    with pytest.raises(ValueError, match="grad_accum = 3.*batch_size a multiple of processes x "
                                         "grad_accum"):
        run("sft", tmp_path, grad_accum=3)


# bf16 autocast against fp32 on the same float32 model and data: per-step losses agree within
# BF16_LOSS (relative), and the bf16 run moves the parameters the same way: the cosine of the
# two updates is above BF16_COSINE. bf16 keeps 8 bits of mantissa (~0.4% per rounding).
BF16_LOSS, BF16_COSINE = 0.03, 0.95
LOSS_KEY = {"sft": "loss/lm", "reward": "loss/reward", "dpo": "loss/dpo", "grpo": "loss/grpo"}


@pytest.mark.parametrize("recipe", ["sft", "reward", "dpo", "grpo"])
def test_bf16_training_tracks_fp32(tmp_path, recipe):
    fp32, fp32_metrics = run(recipe, tmp_path, precision="fp32", dtype=torch.float32)
    bf16, bf16_metrics = run(recipe, tmp_path, precision="bf16", dtype=torch.float32)
    key = LOSS_KEY[recipe]
    for a, b in zip(fp32_metrics, bf16_metrics):
        assert abs(a[key] - b[key]) <= BF16_LOSS * max(abs(a[key]), 0.1), (a[key], b[key])
    init = params(lm(torch.float32) if recipe != "reward" else scorer(torch.float32))
    step32, step16 = params(fp32) - init, params(bf16) - init
    assert torch.nn.functional.cosine_similarity(step32, step16, dim=0) > BF16_COSINE
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # master weights stay fp32


def test_auto_precision_is_bf16_only_where_the_device_has_it():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp16", "cpu") == "fp16"
    want = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", "cuda") == want
    with pytest.raises(ValueError, match="precision 'fp8'"):
        resolve_precision("fp8", "cpu")


def test_the_engine_places_the_model_on_its_device(tmp_path):
    model = lm(torch.float32)
    engine = Engine(TrainConfig(steps=1, batch_size=4, warmup_steps=0, device="cpu"))
    train_lm(model, demonstrations(8), engine.cfg, PAD, 0, Checkpointer(tmp_path, 1000),
             engine=engine)
    assert engine.device.type == "cpu"
    assert all(p.device == engine.device for p in model.parameters())
