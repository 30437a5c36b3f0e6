"""Small random-weight Hugging Face models of real architectures, saved locally with a real
byte-level BPE tokenizer and a ChatML chat template -- what a user's model directory looks like,
without a download."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoModelForCausalLM, GemmaConfig, GPT2Config, LlamaConfig,
                          MistralConfig, PreTrainedTokenizerFast, Qwen2Config)

ARCHITECTURES = ("llama", "qwen2", "mistral", "gpt2", "gemma")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CORPUS = ["what is the capital of france ? the capital of france is paris .",
          "you are a helpful assistant . answer briefly and honestly .",
          "write a haiku about the sea . waves fold into foam , the tide keeps time .",
          "how do i kill a python process ? use kill with its process id .",
          "i am not sure . i do not know the answer to that question ."] * 4


def build_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|pad|>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    if chat_template:
        tok.chat_template = CHATML
    return tok


def model_config(arch: str, tok):
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **ids)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0,
                          embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    if arch == "gemma":
        return GemmaConfig(head_dim=8, **small)
    return {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch](**small)


def small_config(arch: str, vocab_size: int, **ids):
    """A 16-wide, 2-layer Qwen2 (bias on q/k/v), Mistral (no sliding window) or Gemma (scaled
    embeddings, tied head) config with grouped-query attention, for float64 checks of rlxf's
    cache paths against plain forwards."""
    small = dict(vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                 max_position_embeddings=64, **ids)
    if arch == "gemma":
        return GemmaConfig(head_dim=8, **small)
    if arch == "mistral":
        return MistralConfig(sliding_window=None, **small)
    return Qwen2Config(**small)


def save_model_dir(path: Path, arch: str = "llama", seed: int = 0,
                   chat_template: bool = True) -> Path:
    """A random-weight `arch` model and its tokenizer in `path`, loadable by from_pretrained."""
    tok = build_tokenizer(chat_template)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(model_config(arch, tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
