"""rlxf asks peft for the LoRA layout each architecture has: GPT-2's transposed Conv1D layers
get fan_in_fan_out=True (told False, peft warns and switches it itself), Llama's nn.Linear
layers False; with either, the adapter computes W x + (alpha / r) B A x on the layer's own
orientation (checked against that formula by hand on one attention projection)."""

from __future__ import annotations

import warnings

import pytest
import torch
from hf_models import build_tokenizer, model_config
from transformers import AutoModelForCausalLM

from rlxf.config import LoraConfig
from rlxf.models.lora import add_lora


def _model(arch: str):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(model_config(arch, build_tokenizer())).eval()


@pytest.mark.parametrize("arch,transposed", [("gpt2", True), ("llama", False)])
def test_lora_layout_matches_the_architecture_without_peft_warnings(arch, transposed):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # peft's fan_in_fan_out correction is a UserWarning
        model = add_lora(_model(arch), LoraConfig(r=2, alpha=4.0))
    assert model.peft_config["default"].fan_in_fan_out is transposed
    layer = model.base_model.model.transformer.h[0].attn.c_attn if arch == "gpt2" \
        else model.base_model.model.model.layers[0].self_attn.q_proj
    torch.manual_seed(1)
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
        x = torch.randn(3, layer.lora_A["default"].weight.shape[1])
        base = layer.base_layer
        w = base.weight.T if transposed else base.weight  # W as (out, in)
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        expected = x @ w.T + (0 if base.bias is None else base.bias) + 2.0 * (x @ a.T @ b.T)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
