"""Any local Hugging Face causal LM: chat formats, `rlxf sft/reward/dpo` on each architecture,
LoRA (reference = base with adapters disabled; only adapters train; merge), bad input."""

import json

import pytest
import torch
from hf_models import ARCHITECTURES, build_tokenizer, model_config, save_model_dir
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from rlxf.config import (ConfigError, LoraConfig, PolicyConfig, TuneDPOConfig, TuneRewardConfig,
                         TuneSFTConfig, load_tune_config)
from rlxf.feedback.record import RecordError
from rlxf.models.build import load_tokenizer
from rlxf.models.chat import chat_format
from rlxf.models.logprobs import response_batch, sequence_logprobs
from rlxf.models.lora import add_lora, load_adapter_lm, merge_adapter, reference_of
from rlxf.models.tokenizer import build_word_tokenizer
from rlxf.models.tokenizer import prompt_ids as lab_prompt_ids
from rlxf.train.dpo import reference_logprobs, train_dpo
from rlxf.train.loop import Checkpointer
from rlxf.tune.common import TuneError, disable_dropout, encode_pairs
from rlxf.tune.recipes import run_dpo, run_reward, run_sft

torch.set_num_threads(1)
PREFS = [
    {"prompt": "what is the capital of france ?", "chosen": "the capital of france is paris .",
     "rejected": "i do not know ."},
    {"prompt": "how do i kill a python process ?", "chosen": "use kill with its process id .",
     "rejected": "write a haiku about the sea ."},
    {"prompt": [{"role": "system", "content": "answer briefly ."},
                {"role": "user", "content": "are you sure ?"}],
     "chosen": [{"role": "assistant", "content": "i am not sure ."}],
     "rejected": [{"role": "assistant", "content": "paris ."}]},
]
TINY = dict(steps=3, batch_size=2, warmup_steps=0, checkpoint_every=100)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture
def prefs_file(tmp_path):
    # Conversational and standard rows cannot share a file in TRL; keep the standard ones.
    return write_jsonl(tmp_path / "prefs.jsonl", PREFS[:2])


# --- chat formats ---------------------------------------------------------------------------

def test_template_format_splits_the_rendered_conversation_exactly():
    tok = build_tokenizer()
    chat = chat_format(tok)
    msgs = [{"role": "system", "content": "be brief ."}, {"role": "user", "content": "hi"}]
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "paris ."}],
                                   tokenize=False)
    ids = chat.prompt_ids(msgs) + chat.response_ids(msgs, "paris .")
    assert chat.kind == "template" and tok.decode(ids) == full
    assert tok.decode(chat.response_ids(msgs, "paris .")) == "paris .<|im_end|>\n"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in chat.stop_ids and tok.eos_token_id in chat.stop_ids
    # generation stops at the template's end of turn; special tokens are not in the reply
    reply = chat.response_ids(msgs, "paris .") + tok.encode("junk", add_special_tokens=False)
    assert chat.decode(reply) == "paris ."


def test_plain_fallback_without_a_template():
    tok = build_tokenizer(chat_template=False)
    chat = chat_format(tok)
    msgs = [{"role": "user", "content": "hi"}]
    assert chat.kind == "plain"
    assert tok.decode(chat.prompt_ids(msgs)) == "<|endoftext|>USER:\nhi\n\nASSISTANT:\n"
    assert chat.response_ids(msgs, "yes")[-1] == tok.eos_token_id
    assert chat.decode(chat.response_ids(msgs, "yes") + [5, 6]) == "yes"


def test_lab_tokenizer_keeps_the_lab_prompt_format():
    from rlxf.world.vocab import world_vocabulary
    tok = build_word_tokenizer(world_vocabulary())
    chat = chat_format(tok)
    prompt = "what is the capital of veloria ?"
    assert chat.kind == "lab"
    assert chat.prompt_ids([{"role": "user", "content": prompt}]) == lab_prompt_ids(tok, prompt)


# --- each architecture through sft, reward and dpo ------------------------------------------

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_trains_with_sft_reward_and_dpo(tmp_path, arch, prefs_file):
    base = save_model_dir(tmp_path / "base", arch)
    sft = run_sft(base, prefs_file, tmp_path / "sft", TuneSFTConfig(lr=1e-2, **TINY))
    assert sft["saved"] == "model" and sft["data"]["examples"] == 2
    assert sft["metrics"]["parameters/trainable"] == sft["metrics"]["parameters/total"]
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "sft").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rm = run_reward(tmp_path / "sft", prefs_file, tmp_path / "rm",
                    TuneRewardConfig(lora=LoraConfig(r=2), merge=True, **TINY))
    assert rm["saved"] == "merged"
    scorer = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert scorer.config.num_labels == 1
    pol = run_dpo(tmp_path / "sft", prefs_file, tmp_path / "dpo",
                  TuneDPOConfig(lora=LoraConfig(r=2), **TINY))
    assert pol["saved"] == "adapter" and (tmp_path / "dpo" / "adapter_config.json").exists()
    assert 0 < pol["metrics"]["parameters/trainable"] < pol["metrics"]["parameters/total"]
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and '"lora"' in card
    assert not (tmp_path / "dpo.partial").exists()


# --- LoRA -------------------------------------------------------------------------------------

def _perturbed_lora(model_dir):
    """A LoRA model whose adapters are not zero (fresh ones equal the base trivially)."""
    torch.manual_seed(0)
    model = add_lora(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model.eval()


def test_disabled_adapters_give_the_base_models_logprobs(llama_dir):
    tok = load_tokenizer(llama_dir)
    pairs = encode_pairs(chat_format(tok), _conversations(), 256).items
    base = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    lora = _perturbed_lora(llama_dir)
    expected = reference_logprobs(base, pairs, tok.pad_token_id)
    with reference_of(lora):
        got = reference_logprobs(lora, pairs, tok.pad_token_id)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)  # float32 sums of ~100
    adapted = reference_logprobs(lora, pairs, tok.pad_token_id)  # adapters back on
    assert (adapted[0] - expected[0]).abs().max() > 1e-3


def _conversations():
    from rlxf.data.training_data import Conversation
    return [Conversation([{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"])
            for r in PREFS[:2]]


def test_lora_dpo_changes_only_adapter_weights(llama_dir, tmp_path):
    tok = load_tokenizer(llama_dir)
    pairs = encode_pairs(chat_format(tok), _conversations(), 256).items
    policy = add_lora(AutoModelForCausalLM.from_pretrained(llama_dir), LoraConfig(r=4))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with reference_of(policy):
        ref_c, ref_r = reference_logprobs(policy, pairs, tok.pad_token_id)
    cfg = PolicyConfig(steps=4, batch_size=2, lr=1e-2, warmup_steps=0, checkpoint_every=100)
    result = train_dpo(policy, pairs, ref_c, ref_r, cfg, tok.pad_token_id, 0,
                       Checkpointer(tmp_path, 100))
    after = policy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_A" in k for k in changed) and any("lora_B" in k for k in changed)
    assert result["loss/dpo"] < 0.6931  # it learned something from log 2 at the start


def test_merged_adapter_equals_base_plus_adapter(llama_dir, tmp_path):
    lora = _perturbed_lora(llama_dir)
    lora.save_pretrained(tmp_path / "adapter")
    load_tokenizer(llama_dir).save_pretrained(tmp_path / "adapter")
    merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = torch.tensor([[1, 5, 9, 30, 2, 7]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, lora(ids).logits, rtol=0, atol=1e-5)
        reloaded = load_adapter_lm(tmp_path / "adapter")
        torch.testing.assert_close(reloaded(ids).logits, lora(ids).logits, rtol=0, atol=1e-6)


# --- bad input and options --------------------------------------------------------------------

def test_bad_input_names_file_line_and_field(llama_dir, tmp_path, prefs_file):
    bad = write_jsonl(tmp_path / "bad.jsonl", [PREFS[0], {"prompt": "x", "chosen": "y"}])
    with pytest.raises(RecordError, match=r"bad.jsonl line 2: \"rejected\" is missing"):
        run_dpo(llama_dir, bad, tmp_path / "out", TuneDPOConfig(**TINY))
    assert not (tmp_path / "out.partial").exists() and not (tmp_path / "out").exists()
    sft_bad = write_jsonl(tmp_path / "sft.jsonl", [{"messages": [{"role": "user",
                                                                   "content": "hi"}]}])
    with pytest.raises(RecordError, match="sft.jsonl line 1: \"messages\" does not end with "
                                          "an assistant turn"):
        run_sft(llama_dir, sft_bad, tmp_path / "out", TuneSFTConfig(**TINY))
    with pytest.raises(TuneError, match="not a Hugging Face model directory"):
        run_sft(tmp_path, prefs_file, tmp_path / "out", TuneSFTConfig(**TINY))
    with pytest.raises(TuneError, match="already exists"):
        run_sft(llama_dir, prefs_file, tmp_path, TuneSFTConfig(**TINY))


def test_sft_reads_trl_sft_formats_and_cuts_long_responses(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", [
        {"prompt": "hi", "completion": "the capital of france is paris . " * 20},
        {"messages": [{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]}])
    r = run_sft(llama_dir, data, tmp_path / "out", TuneSFTConfig(max_length=24, **TINY))
    assert r["data"]["examples"] == 2 and r["data"]["truncated"] == 1
    assert r["data"]["format"] == "trl-sft"


def test_tune_config_from_toml_with_flags_on_top(tmp_path):
    toml = tmp_path / "tune.toml"
    toml.write_text("[dpo]\nbeta = 0.3\nsteps = 7\n[dpo.lora]\nr = 4\ntargets = ['q_proj']\n")
    cfg = load_tune_config(toml, {"dpo": {"steps": 9}}).dpo
    assert (cfg.beta, cfg.steps, cfg.lora.r, cfg.lora.targets) == (0.3, 9, 4, ["q_proj"])
    toml.write_text("[dpo.lora]\nrank = 4\n")
    with pytest.raises(ConfigError, match="unknown key 'dpo.lora.rank'; allowed here: alpha, "
                                          "dropout, r, targets"):
        load_tune_config(toml, {})


def test_documented_accelerate_configs_parse_with_accelerates_loader():
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig
    configs = sorted((Path(__file__).parents[1] / "examples" / "accelerate").glob("*.yaml"))
    kinds = {ClusterConfig.from_yaml_file(str(c)).distributed_type.value for c in configs}
    assert len(configs) == 6 and kinds == {"MULTI_GPU", "FSDP", "DEEPSPEED"}


def test_an_interrupted_command_resumes_to_the_same_weights(llama_dir, tmp_path, prefs_file):
    cfg = TuneDPOConfig(lr=1e-2, lora=LoraConfig(r=2), steps=4, batch_size=2, warmup_steps=0,
                        checkpoint_every=2)
    run_dpo(llama_dir, prefs_file, tmp_path / "straight", cfg)

    def crash_at_3(description, total):
        def on_step(step, metrics):
            if step == 3:
                raise KeyboardInterrupt
        return on_step
    with pytest.raises(KeyboardInterrupt):
        run_dpo(llama_dir, prefs_file, tmp_path / "resumed", cfg, progress=crash_at_3)
    assert (tmp_path / "resumed.partial" / ".ckpt" / "checkpoint" / "state.pt").exists()
    again = run_dpo(llama_dir, prefs_file, tmp_path / "resumed", cfg)
    assert again["metrics"]["resumed_from_step"] == 2
    from safetensors.torch import load_file
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(KeyboardInterrupt):  # other options: the old checkpoint is not used
        run_dpo(llama_dir, prefs_file, tmp_path / "other", cfg, progress=crash_at_3)
    changed = cfg.model_copy(update={"beta": 0.5})
    assert run_dpo(llama_dir, prefs_file, tmp_path / "other", changed
                   )["metrics"]["resumed_from_step"] == 0


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_reward_and_dpo_train_without_the_checkpoints_dropout(tmp_path, arch):
    # Hub checkpoints ship dropout (GPT-2: 0.1 in three places); DPO's policy must score a pair
    # in training mode exactly as the eval-mode reference does, as with TRL's disable_dropout.
    tok = build_tokenizer(True)
    cfg = model_config(arch, tok)
    if arch == "gpt2":
        cfg.resid_pdrop = cfg.embd_pdrop = cfg.attn_pdrop = 0.1
    else:
        cfg.attention_dropout = 0.1
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(3, len(tok), (2, 12))
    model.train()
    torch.manual_seed(1)
    noisy = model(input_ids=ids).logits
    assert not torch.allclose(noisy, model(input_ids=ids).logits)  # dropout is really there
    disable_dropout(model)
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        model.eval()
        evaluated = model(input_ids=ids).logits
    torch.testing.assert_close(trained, evaluated, rtol=0, atol=0)
