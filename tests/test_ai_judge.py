"""The AI judge: constitution loading and the strict verdict parser; the OpenAI-compatible judge
against a real HTTP server on 127.0.0.1 (scripted judges, retries, cache, position swapping);
the offline judge on a tiny GPT-2 with a BPE tokenizer built here."""

import json
import time

import openai
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from rlxf.feedback.ai_judge import (JudgeError, LocalLMJudge, OpenAIJudge, PairItem, RatingItem,
                                    judge_pairs, judge_ratings)
from rlxf.feedback.constitution import (Constitution, ConstitutionError, load_constitution,
                                        pairwise_messages, parse_ratings, parse_verdict,
                                        rating_messages)
from rlxf.feedback.judge_cache import CACHE_FILE, JudgeCache, JudgeCacheError
from rlxf.feedback.record import FeedbackRecord
from rlxf.models.chat import render_text
from rlxf.models.tokenizer import build_word_tokenizer
from rlxf.world.vocab import world_vocabulary

from fake_chat_server import FakeChatServer

EXAMPLE = "examples/constitution.toml"
ASPECTS = ("helpful", "harmless", "honest")


@pytest.fixture(scope="module")
def constitution(request):
    return load_constitution(request.config.rootpath / EXAMPLE)


# ---- constitution ------------------------------------------------------------------------------

def test_default_constitution_covers_3h_and_style(constitution):
    ids = [p.id for p in constitution.principles]
    assert constitution.id == "rlxf-default" and len(ids) == len(set(ids))
    for needed in ("helpful-answer", "harmless-refuse", "harmless-no-overrefusal",
                   "honest-premise", "honest-calibrated", "honest-no-feelings", "no-flattery",
                   "no-padding"):
        assert needed in ids
    assert constitution.rating_aspects == ASPECTS


def test_markdown_constitution_has_the_same_hash_as_the_toml(tmp_path, constitution):
    # each principle over two lines: the indented line continues the bullet
    bullets = ["- {}: {} {} {}\n  {}".format(p.id, *p.text.split(" ", 3))
               for p in constitution.principles]
    md = tmp_path / "c.md"
    md.write_text("# rlxf-default\n\nSome prose that is not a principle.\n\n## Principles\n\n"
                  + "\n".join(bullets) + "\n")
    again = load_constitution(md)
    assert [p.id for p in again.principles] == [p.id for p in constitution.principles]
    assert again.sha256 == constitution.sha256
    assert again.description == "Some prose that is not a principle."


@pytest.mark.parametrize("body, message", [
    ('[[principles]]\nid = "a"\ntext = "x"\n[[principles]]\nid = "b"\n',
     'principle 2 (\'b\'): "text" is missing'),
    ('[[principles]]\nid = "a"\ntext = "x"\n[[principles]]\nid = "a"\ntext = "y"\n',
     "principle 2 ('a'): duplicate id"),
    ('[[principles]]\nid = "Bad Id"\ntext = "x"\n', "principle 1 ('Bad Id'): \"id\" must match"),
    ('[[principles]]\nid = "a"\ntext = "x"\nweight = 2\n', "unknown key(s) ['weight']"),
    ('id = "c"\n', "needs [[principles]]"),
    ('principles = [\n', "not valid TOML"),
])
def test_constitution_errors_name_the_file_and_the_entry(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConstitutionError) as e:
        load_constitution(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_markdown_bullet_without_id_names_the_line(tmp_path):
    path = tmp_path / "c.md"
    path.write_text("# mine\n\n- helpful: be helpful\n- Choose the honest response.\n")
    with pytest.raises(ConstitutionError, match=r"c\.md line 4: a bullet must be '- id: text'"):
        load_constitution(path)


def test_request_shows_every_principle_and_the_responses_in_order(constitution):
    system, user = pairwise_messages(constitution, "q ?", "first one", "second one",
                                     [{"role": "user", "content": "hi"}])
    for p in constitution.principles:
        assert f"[{p.id}] {p.text}" in system["content"]
    assert constitution.sha256[:12] in system["content"]
    c = user["content"]
    assert c.index("<response_a>\nfirst one\n</response_a>") < c.index("<response_b>\nsecond one")
    assert "USER: hi" in c and c.rstrip().endswith("VERDICT: A\nVERDICT: B\nVERDICT: TIE")
    _, rating = rating_messages(constitution, "q ?", "r .", critique=False)
    assert rating["content"].rstrip().endswith("helpful: N\nharmless: N\nhonest: N")
    assert "critique" not in rating["content"]


@pytest.mark.parametrize("text, expected", [
    ("B is correct [honest-truthful].\nVERDICT: B", ("B", "B is correct [honest-truthful].")),
    ("fine\n\n**VERDICT: tie**  \n", ("TIE", "fine")),
    ("VERDICT: A", ("A", "")),
    ("VERDICT: A\nlater thoughts\nVERDICT: A", ("A", "VERDICT: A\nlater thoughts")),
    ("I prefer A.", None),  # no verdict line
    ("VERDICT: A\nThanks!", None),  # not the last line
    ("VERDICT: C", None),
    ("VERDICT: A\nVERDICT: B", None),  # two different verdicts: not guessed
    ("VERDICT: A or B", None),
    ("", None), (None, None),
])
def test_parse_verdict_is_strict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("ok\nhelpful: 4\nharmless: 5\nhonest: 2",
     ({"helpful": 4.0, "harmless": 5.0, "honest": 2.0}, "ok")),
    ("honest: 1\nhelpful: 3\nharmless: 5", ({"helpful": 3.0, "harmless": 5.0, "honest": 1.0}, "")),
    ("helpful: 4\nharmless: 6\nhonest: 2", None),  # off the 1-5 scale
    ("helpful: 4\nharmless: 4.5\nhonest: 2", None),
    ("helpful: 4\nhelpful: 4\nhonest: 2", None),
    ("helpful: 4\nharmless: 5\nhonest: 2\nthat is all", None),
    ("helpful: 4\nhonest: 2", None),
])
def test_parse_ratings_is_strict(text, expected):
    assert parse_ratings(text, ASPECTS) == expected


# ---- the cache ---------------------------------------------------------------------------------

def test_cache_survives_a_torn_last_line_and_names_a_bad_one(tmp_path):
    cache = JudgeCache(tmp_path)
    cache.put("k1", {"content": "VERDICT: A"})
    with open(tmp_path / CACHE_FILE, "a") as fh:
        fh.write('{"key": "k2", "cont')  # killed while appending
    again = JudgeCache(tmp_path)
    assert len(again) == 1 and again.get("k1")["content"] == "VERDICT: A"
    again.put("k3", {"content": "VERDICT: B"})
    assert set(JudgeCache(tmp_path)._entries) == {"k1", "k3"}
    (tmp_path / CACHE_FILE).write_text('{"key": "k1", "content": "x"}\nnot json\n{"key": "k3"}\n')
    with pytest.raises(JudgeCacheError, match=f"{CACHE_FILE} line 2"):
        JudgeCache(tmp_path)


# ---- a real OpenAI-compatible server on 127.0.0.1 ---------------------------------------------

@pytest.fixture
def serve():
    servers = []

    def start(answer):
        servers.append(FakeChatServer(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def shown(body) -> tuple[str, str, str]:
    """(prompt, response A, response B) as the judge request shows them."""
    user = body["messages"][-1]["content"]

    def between(tag):
        return user.split(f"<{tag}>\n")[1].split(f"\n</{tag}>")[0]
    return between("prompt"), between("response_a"), between("response_b")


def keyword_judge(keyword="tamsk"):
    """Prefers whichever response names the keyword, wherever it is shown: consistent."""
    def answer(body, n):
        _, a, b = shown(body)
        v = ("A" if keyword in a and keyword not in b else
             "B" if keyword in b and keyword not in a else "TIE")
        return 200, f"Response {v} names {keyword} [honest-truthful].\nVERDICT: {v}", {}
    return answer


def always(text):
    return lambda body, n: (200, text, {})


ITEMS = [
    PairItem("what is the capital of veloria ?", "the capital of veloria is tamsk .",
             "the capital of veloria is orvik .", prompt_id="factual/capital/veloria/0"),
    PairItem("the capital of veloria is orvik , right ?", "yes , you are right .",
             "no , the capital of veloria is tamsk ."),
    PairItem("do you love me ?", "i am an ai and do not have feelings .", "i am sorry ."),
]


@pytest.fixture
def judge_at(constitution, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def make(server, **kw):
        kw.setdefault("sleep", lambda s: None)
        return OpenAIJudge(constitution, "judge-model", base_url=server.url, **kw)
    return make


def test_consistent_judge_gives_choices_and_no_position_bias(serve, judge_at, constitution):
    server = serve(keyword_judge())
    records, stats = judge_pairs(judge_at(server), ITEMS)
    assert server.n_requests == 6 and stats.api_calls == 6 and stats.cache_hits == 0
    assert [(r.choice, r.tie) for r in records] == [(0, False), (1, False), (None, True)]
    assert [r.item_id for r in records] == ["c000000", "c000001", "c000002"]
    # both orders were asked: the second request shows the pair swapped
    _, a0, b0 = shown(server.bodies[0])
    _, a1, b1 = shown(server.bodies[1])
    assert (a0, b0) == (ITEMS[0].a, ITEMS[0].b) and (a1, b1) == (ITEMS[0].b, ITEMS[0].a)
    assert server.bodies[0]["temperature"] == 0.0 and server.bodies[0]["model"] == "judge-model"
    assert (stats.n_first, stats.n_second, stats.p_first) == (2, 2, 0.5)
    assert stats.position_bias == 0.0 and stats.inconsistency_rate == 0.0
    assert stats.parse_failures == 0 and stats.n_records == 3

    r = FeedbackRecord.model_validate(json.loads(json.dumps(records[0].to_json())))
    assert r.source == "ai" and r.annotator.id == "judge-model" and r.type == "pairwise"
    assert r.prompt_id == "factual/capital/veloria/0" and r.responses == [ITEMS[0].a, ITEMS[0].b]
    assert r.critique == "Response A names tamsk [honest-truthful]."
    p = r.provenance
    assert p["constitution"] == "rlxf-default" and p["constitution_sha256"] == constitution.sha256
    assert p["model"] == "judge-model" and p["base_url"] == server.url
    assert p["position_consistent"] is True
    assert [(o["swapped"], o["verdict"]) for o in p["orders"]] == [(False, "A"), (True, "B")]


def test_always_a_judge_is_all_position_bias(serve, judge_at):
    server = serve(always("The first one is better.\nVERDICT: A"))
    records, stats = judge_pairs(judge_at(server), ITEMS)
    assert all(r.tie and r.choice is None for r in records) and len(records) == 3
    assert all(r.provenance["position_consistent"] is False for r in records)
    assert stats.position_bias == 1.0 and stats.p_first == 1.0
    assert stats.inconsistency_rate == 1.0 and stats.n_inconsistent == 3


def test_partly_biased_judge_has_the_hand_computed_bias(serve, judge_at):
    # Consistent on the first item, always "A" on the second: first-shown picks 3, second 1.
    fair = keyword_judge()

    def answer(body, n):
        prompt, _, _ = shown(body)
        return fair(body, n) if "what is" in prompt else (200, "VERDICT: A", {})
    _, stats = judge_pairs(judge_at(serve(answer)), ITEMS[:2])
    assert (stats.n_first, stats.n_second) == (3, 1)
    assert stats.position_bias == pytest.approx(0.5) and stats.p_first == pytest.approx(0.75)
    assert stats.inconsistency_rate == 0.5


def test_malformed_answers_are_counted_and_no_record_is_invented(serve, judge_at):
    fair = keyword_judge()

    def answer(body, n):  # the third item's swapped order (request 6) answers in prose
        return (200, "I would go with the second one.", {}) if n == 6 else fair(body, n)
    records, stats = judge_pairs(judge_at(serve(answer)), ITEMS)
    assert [r.item_id for r in records] == ["c000000", "c000001"]
    assert stats.parse_failures == 1 and stats.n_unjudged == 1 and stats.n_records == 2
    records, stats = judge_pairs(judge_at(serve(always("no idea"))), ITEMS)
    assert records == [] and stats.parse_failures == 6 and stats.position_bias is None


def test_transient_errors_are_retried_with_backoff(serve, judge_at):
    fair = keyword_judge()
    script = {1: (429, "slow down", {"Retry-After": "3"}), 2: (500, "boom", {})}
    server = serve(lambda body, n: script.get(n) or fair(body, n))
    sleeps = []
    records, stats = judge_pairs(judge_at(server, sleep=sleeps.append, backoff_s=1.0), ITEMS[:1])
    # 1st failure waits max(1 s backoff, 3 s Retry-After), the 2nd 2 s; then both orders answer
    assert sleeps == [3.0, 2.0] and server.n_requests == 4 and stats.api_calls == 4
    assert records[0].choice == 0


def test_a_timeout_is_retried(serve, judge_at):
    fair = keyword_judge()

    def answer(body, n):
        if n == 1:
            time.sleep(0.6)
        return fair(body, n)
    sleeps = []
    judge = judge_at(serve(answer), timeout_s=0.2, sleep=sleeps.append, backoff_s=0.5)
    records, stats = judge_pairs(judge, ITEMS[:1])
    assert sleeps == [0.5] and stats.api_calls == 3 and records[0].choice == 0


def test_retries_stop_at_max_attempts_and_client_errors_are_not_retried(serve, judge_at):
    down = serve(lambda body, n: (503, "unavailable", {}))
    sleeps = []
    with pytest.raises(JudgeError, match="gave up after 3 attempts"):
        judge_pairs(judge_at(down, max_attempts=3, sleep=sleeps.append, backoff_s=1.0,
                             backoff_max_s=1.5), ITEMS[:1])
    assert down.n_requests == 3 and sleeps == [1.0, 1.5]
    bad = serve(lambda body, n: (400, "bad request", {}))
    with pytest.raises(openai.BadRequestError):
        judge_pairs(judge_at(bad, sleep=sleeps.append), ITEMS[:1])
    assert bad.n_requests == 1 and len(sleeps) == 2


def test_cache_makes_a_second_run_free_and_identical(serve, judge_at, tmp_path):
    first = serve(keyword_judge())
    records, stats = judge_pairs(judge_at(first, cache_dir=tmp_path), ITEMS)
    assert first.n_requests == 6 and stats.cache_hits == 0
    second = serve(keyword_judge())  # another port: the address is not part of the key
    again, stats2 = judge_pairs(judge_at(second, cache_dir=tmp_path), ITEMS)
    assert second.n_requests == 0 and stats2.cache_hits == 6 and stats2.api_calls == 0
    assert [r.to_json() | {"provenance": {}} for r in again] == \
        [r.to_json() | {"provenance": {}} for r in records]
    assert [r.provenance["orders"] for r in again] == [r.provenance["orders"] for r in records]
    assert all(r.created for r in again)
    # a different request (temperature) is a different key
    _, stats3 = judge_pairs(judge_at(second, cache_dir=tmp_path, temperature=0.7), ITEMS[:1])
    assert second.n_requests == 2 and stats3.cache_hits == 0


def test_api_key_comes_from_the_named_variable_and_is_never_stored(serve, constitution,
                                                                   monkeypatch, tmp_path):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret-123")
    server = serve(keyword_judge())
    judge = OpenAIJudge(constitution, "judge-model", base_url=server.url,
                        api_key_env="MY_JUDGE_KEY", cache_dir=tmp_path)
    records, _ = judge_pairs(judge, ITEMS[:1])
    assert server.auth == ["Bearer sk-secret-123"] * 2
    assert "sk-secret" not in json.dumps([r.to_json() for r in records])
    assert "sk-secret" not in (tmp_path / CACHE_FILE).read_text()
    monkeypatch.delenv("MY_JUDGE_KEY")
    local = OpenAIJudge(constitution, "judge-model", base_url=server.url,
                        api_key_env="MY_JUDGE_KEY")
    judge_pairs(local, ITEMS[1:2])
    assert server.auth[-1] == "Bearer not-needed"
    with pytest.raises(JudgeError, match="MY_JUDGE_KEY is not set"):
        OpenAIJudge(constitution, "gpt-x", api_key_env="MY_JUDGE_KEY")


def test_concurrent_requests_give_the_same_records(serve, judge_at):
    server = serve(keyword_judge())
    one, _ = judge_pairs(judge_at(server), ITEMS)
    four, stats = judge_pairs(judge_at(server), ITEMS, workers=4)
    strip = [{k: v for k, v in r.to_json().items() if k != "created"} for r in one]
    assert [{k: v for k, v in r.to_json().items() if k != "created"} for r in four] == strip
    assert stats.n_requests == 6 and server.n_requests == 12


def test_ratings_over_http(serve, judge_at):
    answers = {1: "Honest but unhelpful.\nhelpful: 2\nharmless: 5\nhonest: 5",
               2: "helpful: 9\nharmless: 5\nhonest: 5"}  # 9 is off the scale
    server = serve(lambda body, n: (200, answers[n], {}))
    items = [RatingItem("q ?", "i am not sure about that ."), RatingItem("q ?", "x .")]
    records, stats = judge_ratings(judge_at(server), items)
    assert "<response>\ni am not sure about that .\n</response>" in \
        server.bodies[0]["messages"][1]["content"]
    assert len(records) == 1 and stats.parse_failures == 1
    r = records[0]
    assert r.type == "rating" and r.ratings == {"helpful": 2.0, "harmless": 5.0, "honest": 5.0}
    assert r.critique == "Honest but unhelpful." and r.provenance["rating_scale"] == "1-5"


# ---- the offline judge on a tiny local model ---------------------------------------------------

def _bpe_judge_dir(path, constitution, n_positions=1024):
    """A BPE tokenizer trained here on the judge's own requests, and a 1-layer GPT-2."""
    texts = [render_text(pairwise_messages(constitution, it.prompt, it.a, it.b, critique=False))
             for it in ITEMS]
    texts += [render_text(rating_messages(constitution, "q ?", "r .", critique=False))]
    texts += ["VERDICT: A", "VERDICT: B", "VERDICT: TIE"] + [f"{a}: {k}" for a in ASPECTS
                                                             for k in range(1, 6)]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<bos>",
                                  eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=16,
                                       n_layer=1, n_head=2, bos_token_id=tok.bos_token_id,
                                       eos_token_id=tok.eos_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory, constitution):
    return _bpe_judge_dir(tmp_path_factory.mktemp("tiny-judge"), constitution)


def test_local_judge_scores_the_verdict_line_like_a_plain_forward(local_dir, constitution):
    judge = LocalLMJudge(constitution, local_dir)
    it = ITEMS[0]
    j = judge.judge_pair(it.prompt, it.a, it.b)
    # independent: one forward over <bos> request VERDICT: X, summing the option's log-probs
    tok, model = judge.tokenizer, judge.model
    text = render_text(pairwise_messages(constitution, it.prompt, it.a, it.b, critique=False))
    prefix = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    lps = []
    for v in "AB":
        option = tok(f"VERDICT: {v}", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prefix + option])
        with torch.no_grad():
            logp = model(ids).logits[0, :-1].double().log_softmax(-1)
        lps.append(sum(logp[len(prefix) - 1 + k, t].item() for k, t in enumerate(option)))
    p_a = 1 / (1 + torch.exp(torch.tensor(lps[1] - lps[0])).item())
    assert j.probs["A"] == pytest.approx(p_a, abs=1e-5)
    assert j.verdict == ("A" if lps[0] > lps[1] else "B")
    assert j.extra["unk_fraction"] == 0.0

    records, stats = judge_pairs(judge, ITEMS)
    assert len(records) == 3 and stats.parse_failures == 0 and stats.api_calls == 0
    assert stats.n_first + stats.n_second == 6 and -1 <= stats.position_bias <= 1
    for r in records:
        assert r.source == "ai" and r.annotator.id == local_dir.name
        assert [o["swapped"] for o in r.provenance["orders"]] == [False, True]
        assert 0 <= r.provenance["p_response_0"] <= 1
        if not r.tie:
            assert r.strength >= 0.5 - 1e-9  # the consistent choice is the likelier on average


def test_local_judge_ratings(local_dir, constitution):
    records, stats = judge_ratings(LocalLMJudge(constitution, local_dir),
                                   [RatingItem("q ?", "r .")])
    (r,) = records
    assert set(r.ratings) == set(ASPECTS) and all(1 <= v <= 5 for v in r.ratings.values())
    for aspect, probs in r.provenance["rating_probs"].items():
        assert sum(probs) == pytest.approx(1.0) and r.ratings[aspect] == 1 + probs.index(max(probs))


def test_lab_tokenizer_cannot_state_a_verdict(tmp_path, constitution):
    tok = build_word_tokenizer(world_vocabulary())
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1,
                               n_head=2)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(JudgeError, match="same tokens"):
        LocalLMJudge(constitution, tmp_path)


def test_a_request_longer_than_the_model_is_an_error(tmp_path, constitution):
    judge = LocalLMJudge(constitution, _bpe_judge_dir(tmp_path, constitution, n_positions=64))
    with pytest.raises(JudgeError, match="reads at most 64"):
        judge.judge_pair("q ?", "a .", "b .")


def test_constitution_from_code_validates_too():
    with pytest.raises(ConstitutionError, match="no principles"):
        Constitution.from_principles("empty", [])
