"""The real-model path against plain transformers and TRL 1.16 on the same data:
- a reward model (full fine-tune or LoRA) reads the token `AutoModelForSequenceClassification`
  reads -- transformers' rule, the last token that is not pad, so with pad == eos the token
  before a final <eos> -- in training and in scoring (GPT-2 whose pad is its eos, Llama with
  pad == eos and a `</s>`-ending template, Qwen2 with ChatML);
- the token sequences of each row shape are TRL's own (SFT, reward, DPO), and the reward loss
  at step 1 and the DPO loss at steps 1-2 equal TRL's trainers' on the same batch."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hf_models import CORPUS, save_model_dir
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, GPT2Config,
                          LlamaConfig, PreTrainedTokenizerFast)

from rlxf.config import LoraConfig, PolicyConfig, TuneRewardConfig
from rlxf.feedback.record import RecordError
from rlxf.data.training_data import load_demonstrations, load_preferences
from rlxf.models.build import load_tokenizer
from rlxf.models.chat import chat_format
from rlxf.models.reward_scores import score
from rlxf.train.dpo import pair_logprobs, reference_logprobs, train_dpo
from rlxf.train.loop import Checkpointer
from rlxf.train.losses import dpo_loss
from rlxf.train.reward import bradley_terry_batch, pair_rewards
from rlxf.tune.common import disable_dropout, encode_demonstrations, encode_pairs
from rlxf.tune.recipes import run_reward

trl = pytest.importorskip("trl", reason="trl is in the [test] extra")

torch.set_num_threads(1)
TOL = 1e-6
# Mistral / Llama-2 style: the assistant turn ends with </s>; no system role.
INST = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
        "{{ m['content'] }} [/INST]{% elif m['role'] == 'assistant' %}{{ m['content'] }}"
        "{{ eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are "
        "supported!') }}{% endif %}{% endfor %}")
STANDARD = [
    {"prompt": "what is the capital of france ?", "chosen": " the capital of france is paris .",
     "rejected": " i do not know ."},
    {"prompt": "how do i kill a python process ?", "chosen": " use kill with its process id .",
     "rejected": " write a haiku about the sea ."},
    {"prompt": "are you sure ?", "chosen": " i am not sure .", "rejected": " paris ."},
]


def conversational(rows):
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"].strip()}],
             "rejected": [{"role": "assistant", "content": r["rejected"].strip()}]}
            for r in rows]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _bpe(specials: list[str]) -> Tokenizer:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(CORPUS + ["[INST] [/INST]"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return core


def llama_eos_pad_dir(path, seed: int = 0):
    """A Llama directory as released Llama-2 / Mistral ones are: the tokenizer adds <s>, pad is
    </s> (= eos), and the chat template closes the assistant turn with </s>."""
    core = _bpe(["<s>", "</s>", "<unk>"])
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", core.token_to_id("<s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", pad_token="</s>")
    tok.chat_template = INST
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return _save(path, tok, cfg, seed)


def gpt2_dir(path, seed: int = 0):
    """A GPT-2 base directory as the hub's: <|endoftext|> is bos and eos, no pad token (rlxf
    and TRL pad with eos), no chat template."""
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(["<|endoftext|>"]),
                                  bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return _save(path, tok, cfg, seed)


def _save(path, tok, cfg, seed):
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def model_dir(kind: str, path):
    if kind == "gpt2":
        return gpt2_dir(path)
    if kind == "llama-eos-pad":
        return llama_eos_pad_dir(path)
    return save_model_dir(path, "qwen2")  # ChatML, pad distinct from eos


def rows_for(kind: str):
    # GPT-2 base: plain strings (TRL appends eos); the chat models: conversations.
    return STANDARD if kind == "gpt2" else conversational(STANDARD)


def _plain_forward(model, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence alone through the model's own forward (no padding, no rlxf code)."""
    with torch.no_grad():
        one = [model(input_ids=torch.tensor([p + r])).logits[0, 0] for p, c, rj in pairs
               for r in (c, rj)]
    return torch.stack(one[0::2]), torch.stack(one[1::2])


# --- the token a reward model reads ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["gpt2", "llama-eos-pad", "qwen2"])
@pytest.mark.parametrize("lora", [False, True])
def test_reward_model_scores_as_sequence_classification_does(tmp_path, kind, lora):
    base = model_dir(kind, tmp_path / "base")
    data = write_jsonl(tmp_path / "prefs.jsonl", rows_for(kind))
    cfg = TuneRewardConfig(steps=3, batch_size=2, lr=3e-2, warmup_steps=0, checkpoint_every=100,
                           lora=LoraConfig(r=2) if lora else None, merge=lora)
    run_reward(base, data, tmp_path / "rm", cfg)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").double().eval()
    tok = load_tokenizer(tmp_path / "rm")
    assert model.config.pad_token_id == tok.pad_token_id
    pairs = encode_pairs(chat_format(tok), load_preferences(data).items, 256).items
    if kind != "qwen2":  # the case the rule is about: every sequence ends with pad == eos
        assert tok.pad_token_id == tok.eos_token_id
        assert all(c[-1] == r[-1] == tok.eos_token_id for _, c, r in pairs)
    want_c, want_r = _plain_forward(model, pairs)
    with torch.no_grad():
        got_c, got_r = pair_rewards(model, pairs, tok.pad_token_id)  # what training reads
    torch.testing.assert_close(got_c, want_c, rtol=0, atol=TOL)
    torch.testing.assert_close(got_r, want_r, rtol=0, atol=TOL)
    scored = score(model, [p for p, _, _ in pairs] * 2, [c for _, c, _ in pairs]
                   + [r for _, _, r in pairs], tok.pad_token_id)  # batched, padded
    torch.testing.assert_close(torch.tensor(scored, dtype=torch.float64),
                               torch.cat([want_c, want_r]), rtol=0, atol=TOL)


def test_full_fine_tune_fast_path_reads_before_a_final_eos(tmp_path):
    """GPT-2's last-layer shortcut (models/last_layer.py) and the shared-prefix path agree with
    the plain forward also where pad == eos occurs inside the sequence and at its end."""
    base = gpt2_dir(tmp_path / "base")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).double()
    eos = model.config.eos_token_id
    model.config.pad_token_id = eos
    pairs = [([eos, 5, 6, 7], [8, 9, eos], [10, eos]), ([eos, 11], [12, eos, 13, eos], [14, 15])]
    got = torch.cat(pair_rewards(model, pairs, eos))
    want = torch.cat(_plain_forward(model, pairs))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    # and the head's input really is not the final <eos>'s: dropping that token changes nothing
    torch.testing.assert_close(got[0], _plain_forward(model, [([eos, 5, 6, 7], [8, 9], [8])])[0][0],
                               rtol=0, atol=1e-9)


# --- TRL's tokenisation and losses ------------------------------------------------------------

def _trl_args(config_cls, tmp_path, n: int, **extra):
    return config_cls(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=n,
                      report_to="none", use_cpu=True, max_length=None, bf16=False,
                      gradient_checkpointing=False, dataloader_num_workers=0, save_strategy="no",
                      learning_rate=1e-2, weight_decay=0.0, max_grad_norm=1.0,
                      lr_scheduler_type="constant", warmup_steps=0, seed=0, **extra)


@pytest.fixture(scope="module")
def llama_eos_pad(tmp_path_factory):
    return llama_eos_pad_dir(tmp_path_factory.mktemp("llama-eos-pad"))


@pytest.mark.parametrize("kind, shape", [("llama-eos-pad", "standard"),
                                         ("llama-eos-pad", "conversational"),
                                         ("gpt2", "standard"), ("qwen2", "conversational")])
def test_reward_sequences_and_step_one_loss_equal_trls_reward_trainer(tmp_path, llama_eos_pad,
                                                                      kind, shape):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    base = llama_eos_pad if kind == "llama-eos-pad" else model_dir(kind, tmp_path / "base")
    rows = STANDARD if shape == "standard" else conversational(STANDARD)
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    tok = load_tokenizer(base)
    pairs = encode_pairs(chat_format(tok), load_preferences(data).items, 256).items
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).double()
    model.config.pad_token_id = tok.pad_token_id
    ours = copy.deepcopy(model)
    trainer = RewardTrainer(model=model, args=_trl_args(RewardConfig, tmp_path, len(rows)),
                            train_dataset=Dataset.from_list(rows), processing_class=tok)
    for row, (p, c, r) in zip(trainer.train_dataset, pairs):
        assert (row["chosen_ids"], row["rejected_ids"]) == (p + c, p + r)
    if kind == "llama-eos-pad" and shape == "standard":  # raw + eos, no [INST]; <s> first
        assert tok.decode(pairs[0][0] + pairs[0][1]) == \
            "<s>" + STANDARD[0]["prompt"] + STANDARD[0]["chosen"] + "</s>"
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = trainer.compute_loss(trainer.model, batch)
    disable_dropout(ours)
    ours.train()
    loss, _ = bradley_terry_batch()(ours, pairs, tok.pad_token_id)
    assert abs(loss.item() - theirs.item()) < TOL


@pytest.mark.parametrize("shape", ["standard", "conversational"])
def test_dpo_sequences_and_loss_equal_trl_at_steps_one_and_two(tmp_path, llama_eos_pad, shape):
    """Plain strings (the case the issue found: 0.636 vs TRL's 0.627 at step 2 when rlxf
    wrapped them in the template) and conversations."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = STANDARD if shape == "standard" else conversational(STANDARD)
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    tok = load_tokenizer(llama_eos_pad)
    pairs = encode_pairs(chat_format(tok), load_preferences(data).items, 256).items
    base = AutoModelForCausalLM.from_pretrained(llama_eos_pad).double()
    policy, ref = copy.deepcopy(base), copy.deepcopy(base)
    seen = []

    class Recording(DPOTrainer):
        def compute_loss(self, *args, **kwargs):
            out = super().compute_loss(*args, **kwargs)
            seen.append((out[0] if isinstance(out, tuple) else out).item())
            return out

    trainer = Recording(model=base, ref_model=ref, train_dataset=Dataset.from_list(rows),
                        args=_trl_args(DPOConfig, tmp_path, len(STANDARD), beta=0.1,
                                       max_steps=2, logging_steps=1),
                        processing_class=tok)
    for row, (p, c, r) in zip(trainer.train_dataset, pairs):
        assert (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) == (p, c, r)
    trainer.train()
    ref_c, ref_r = reference_logprobs(policy, pairs, tok.pad_token_id)
    cfg = PolicyConfig(steps=1, batch_size=len(pairs), lr=1e-2, warmup_steps=0,
                       checkpoint_every=100, beta=0.1)
    step1 = train_dpo(policy, pairs, ref_c, ref_r, cfg, tok.pad_token_id, 0,
                      Checkpointer(tmp_path / "ckpt", 100))["loss/dpo"]
    with torch.no_grad():
        step2 = dpo_loss(*pair_logprobs(policy, pairs, tok.pad_token_id), ref_c, ref_r,
                         0.1)[0].item()
    assert len(seen) == 2
    assert abs(step1 - seen[0]) < TOL and abs(step2 - seen[1]) < TOL
    assert abs(step2 - step1) > 1e-4  # the update did something both sides agree on


SFT_GENERATION = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == "
                  "'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>\n{% endgeneration %}"
                  "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize("shape", ["standard", "conversational", "messages", "text"])
def test_sft_sequences_equal_trls_sft_trainer(tmp_path, shape):
    """prompt/completion strings (raw + eos), conversational prompt/completion (template,
    completion-only loss) and multi-turn `messages` (every assistant turn, TRL's
    assistant_only_loss with a template that marks assistant turns)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    base = save_model_dir(tmp_path / "base", "qwen2")
    tok = load_tokenizer(base)
    if shape == "standard":
        rows = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in STANDARD]
    elif shape == "text":
        rows = [{"text": r["prompt"] + r["chosen"]} for r in STANDARD]
    elif shape == "conversational":
        rows = [{"prompt": r["prompt"], "completion": r["chosen"]}
                for r in conversational(STANDARD)]
    else:
        tok.chat_template = SFT_GENERATION
        rows = [{"messages": [{"role": "system", "content": "be brief ."},
                              {"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "paris ."},
                              {"role": "user", "content": "are you sure ?"},
                              {"role": "assistant", "content": "i am not sure ."}]}]
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    examples = encode_demonstrations(chat_format(tok), load_demonstrations(data).items,
                                     256).items
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(base),
                         args=_trl_args(SFTConfig, tmp_path, 1,
                                        assistant_only_loss=shape == "messages"),
                         train_dataset=Dataset.from_list(rows), processing_class=tok)
    for row, (ids, trained) in zip(trainer.train_dataset, examples):
        assert row["input_ids"] == ids
        mask = trained if shape == "messages" else [0] * trained + [1] * (len(ids) - trained)
        labels = row.get("labels", row["input_ids"])  # text rows: every token
        # Position 0's label is never used (nothing predicts the first token).
        assert labels[1:] == [t if m else -100 for t, m in zip(ids, mask)][1:]
        if shape == "messages":
            assert tok.decode([t for t, m in zip(ids, mask) if m]) == \
                "paris .<|im_end|>\ni am not sure .<|im_end|>\n"
    if shape == "standard":
        assert tok.decode(examples[0][0]) == STANDARD[0]["prompt"] + STANDARD[0]["chosen"] + \
            tok.eos_token


# --- merge, score, serve ----------------------------------------------------------------------

def test_merged_lora_reward_model_scores_as_the_adapter_and_rlxf_score_reads_both(
        tmp_path, llama_eos_pad):
    from rlxf.models.lora import load_adapter_lm, merge_adapter
    from rlxf.serve.model import resolve_model_dir
    from rlxf.tune.score import score_file

    data = write_jsonl(tmp_path / "prefs.jsonl", STANDARD)
    cfg = TuneRewardConfig(steps=3, batch_size=2, lr=3e-2, warmup_steps=0, checkpoint_every=100,
                           lora=LoraConfig(r=2))
    assert run_reward(llama_eos_pad, data, tmp_path / "adapter", cfg)["saved"] == "adapter"
    merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    adapter = load_adapter_lm(tmp_path / "adapter")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    fresh = AutoModelForSequenceClassification.from_pretrained(llama_eos_pad, num_labels=1)
    assert not torch.equal(merged.score.weight, fresh.score.weight)  # not a new head
    tok = load_tokenizer(tmp_path / "merged")
    pairs = encode_pairs(chat_format(tok), load_preferences(data).items, 256).items
    torch.testing.assert_close(torch.stack(_plain_forward(merged, pairs)),
                               torch.stack(_plain_forward(adapter, pairs)), rtol=0, atol=1e-5)
    rows = [{"prompt": r["prompt"], "completion": r["chosen"], "id": i}
            for i, r in enumerate(STANDARD)]
    src = write_jsonl(tmp_path / "rows.jsonl", rows)
    for name in ("merged", "adapter"):
        result = score_file(tmp_path / name, src, tmp_path / f"{name}.jsonl")
        assert result["rows"] == 3
    got = [[json.loads(x) for x in (tmp_path / f"{n}.jsonl").read_text().splitlines()]
           for n in ("merged", "adapter")]
    assert [r["id"] for r in got[0]] == [0, 1, 2]
    want = _plain_forward(merged, pairs)[0]
    for scored in got:
        torch.testing.assert_close(torch.tensor([r["reward"] for r in scored]), want,
                                   rtol=0, atol=1e-5)
    for name in ("merged", "adapter"):  # a reward model is not a chat model
        with pytest.raises(ValueError, match="is a reward model.*rlxf score"):
            resolve_model_dir(tmp_path / name)
    bad = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"prompt": "x"}])
    with pytest.raises(RecordError, match=r"bad.jsonl line 2: \"completion\" is missing"):
        score_file(tmp_path / "merged", bad, tmp_path / "bad-out.jsonl")
    assert not (tmp_path / "bad-out.jsonl").exists()
