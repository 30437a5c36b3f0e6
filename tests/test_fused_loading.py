"""The lab's loaders (models/build.py) hand out GPT-2 models with `SigmoidFormGELU`
(models/fused_ops.py) in place of transformers' Python `gelu_new`: the same outputs as plain `transformers` loading (to
float32 rounding; tests/test_last_layer.py checks the two activations equal in float64), and
the saved config keeps its own activation."""

from __future__ import annotations

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, GPT2Config,
                          GPT2ForSequenceClassification, GPT2LMHeadModel)
from transformers.activations import NewGELUActivation

from rlxf.models.build import load_causal_lm, load_reward_model
from rlxf.models.fused_ops import SigmoidFormGELU


def _config():
    return GPT2Config(vocab_size=40, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                      pad_token_id=0, num_labels=1)


def test_loaded_models_are_fused_and_give_plain_transformers_outputs(tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(1, 40, (3, 11))
    for cls, auto, load in ((GPT2LMHeadModel, AutoModelForCausalLM, load_causal_lm),
                            (GPT2ForSequenceClassification, AutoModelForSequenceClassification,
                             load_reward_model)):
        path = tmp_path / cls.__name__
        cls(_config()).save_pretrained(path)
        model, plain = load(path), auto.from_pretrained(path).eval()
        kinds = {type(m) for m in model.modules()}
        assert SigmoidFormGELU in kinds and NewGELUActivation not in kinds
        assert NewGELUActivation in {type(m) for m in plain.modules()}
        assert not model.training
        with torch.no_grad():
            got, want = model(input_ids=ids).logits, plain(input_ids=ids).logits
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()
        model.save_pretrained(tmp_path / "again")
        assert auto.from_pretrained(tmp_path / "again").config.activation_function == "gelu_new"
