"""A word-level tokenizer for the lab world, built with `tokenizers` and saved with
`save_pretrained` like any Hugging Face tokenizer."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
USER, ASSISTANT = "<user>", "<assistant>"
SPECIALS = [PAD, BOS, EOS, UNK, USER, ASSISTANT]


def build_word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(words) - set(SPECIALS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS,
                                  eos_token=EOS, unk_token=UNK,
                                  additional_special_tokens=[USER, ASSISTANT])
    tok.padding_side = "left"  # generation pads on the left; training code pads by hand
    return tok


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """<bos> <user> prompt <assistant> -- the model continues with the response."""
    ids = tokenizer.convert_tokens_to_ids([BOS, USER, *prompt.split(), ASSISTANT])
    return ids


def response_ids(tokenizer, response: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids([*response.split(), EOS])


def decode_response(tokenizer, ids: list[int]) -> str:
    """Text up to the first <eos>, special tokens dropped."""
    out = []
    for tok in tokenizer.convert_ids_to_tokens(ids):
        if tok == EOS:
            break
        if tok not in SPECIALS:
            out.append(tok)
    return " ".join(out)
