"""The lab's sampled texts (models/sampling.py) come from group_sampling's cache path, batch by
batch from seed·7919 + batch start, cut at <eos>; deterministic given the seed. (That path's
distribution against transformers' `generate`: tests/test_group_sampling.py.)"""

from __future__ import annotations

from rlxf.config import ModelConfig
from rlxf.models.build import build_causal_lm
from rlxf.models.group_sampling import sample_groups
from rlxf.models.sampling import sample_responses
from rlxf.models.tokenizer import build_word_tokenizer, decode_response, prompt_ids
from rlxf.world.vocab import world_vocabulary

TOK = build_word_tokenizer(world_vocabulary())


def test_batches_draw_from_their_own_seed_on_the_cache_path():
    model = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)
    prompts = ["what is the capital of veloria ?", "do you love me ?", "hello",
               "what is the capital of veloria ?", "do you love me ?"]
    got = sample_responses(model, TOK, prompts, temperature=1.0, max_new_tokens=9, seed=4,
                           batch_size=3)
    assert got == sample_responses(model, TOK, prompts, temperature=1.0, max_new_tokens=9,
                                   seed=4, batch_size=3)
    want = []
    for b in (0, 3):
        rows = sample_groups(model, [prompt_ids(TOK, p) for p in prompts[b: b + 3]], 1,
                             temperature=1.0, max_new_tokens=9, seed=4 * 7919 + b,
                             pad_id=TOK.pad_token_id, eos_id=TOK.eos_token_id)
        want += [decode_response(TOK, r) for r in rows]
    assert got == want
    other = sample_responses(model, TOK, prompts, temperature=1.0, max_new_tokens=9, seed=5,
                             batch_size=3)
    assert other != got  # an untrained model's samples: another seed, other draws
