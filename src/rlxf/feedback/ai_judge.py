"""The AI judge for RLAIF (Bai et al. 2022; Lee et al. 2023): an LLM steered by a written
constitution judges pairs of responses (or rates one), and every judgement becomes a canonical
`FeedbackRecord` with `source="ai"`.

Two judges share one interface (`Judge`):

- `OpenAIJudge` asks any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, `rlxf serve`)
  for a short critique and a final `VERDICT: A|B|TIE` line, with retries and an answer cache.
- `LocalLMJudge` runs offline with a local causal LM directory and scores the verdict line by
  log-probability instead of generating.

`judge_pairs` asks every pair in both orders and combines them (position swapping), because LLM
judges prefer whichever response is shown first (Zheng et al. 2023, "Judging LLM-as-a-judge").
Definitions, over the items whose two orders both parsed:

- consistent: both orders name the same response, or both say TIE. That is the record's
  choice (or tie). Any other pair of verdicts is position-inconsistent and recorded as a tie
  with `provenance.position_consistent = false`.
- p_first = n_first / (n_first + n_second), counting single requests that answered A (the
  response shown first) or B (shown second); TIE answers count in neither.
- position_bias = 2 * p_first - 1 = (n_first - n_second) / (n_first + n_second), in [-1, 1].
  Every item is shown both ways round, so a judge that is consistent on every item answers A
  exactly as often as B: its bias is 0. A judge that always answers A has bias 1, always B -1.
- inconsistency_rate = inconsistent items / items with both orders parsed.

An answer that does not parse is counted (`parse_failures`) and its item gets no record: nothing
is guessed. See docs/AI_JUDGE.md.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Protocol
from urllib.parse import urlsplit, urlunsplit

import openai
import torch

from ..models.build import load_causal_lm, load_tokenizer
from ..models.chat import render_text
from ..models.logprobs import response_batch, sequence_logprobs
from .constitution import (RATING_SCALE, Constitution, pairwise_messages, parse_ratings,
                           parse_verdict, rating_messages)
from .judge_cache import JudgeCache, request_key
from .record import FeedbackRecord


class JudgeError(RuntimeError):
    pass


@dataclass(frozen=True)
class PairItem:
    """Two responses to one prompt. Without an item_id, judge_pairs numbers items `c000000`,
    ... in order, as `simulated.label_comparisons` does, so the same pair list judged by simulated
    annotators and the AI judge shares item ids."""
    prompt: str
    a: str
    b: str
    item_id: str | None = None
    prompt_id: str | None = None
    context: tuple[dict, ...] = ()  # earlier turns, {role, content}, oldest first


@dataclass(frozen=True)
class RatingItem:
    prompt: str
    response: str
    item_id: str | None = None  # default r000000, r000001, ...
    prompt_id: str | None = None
    context: tuple[dict, ...] = ()


@dataclass
class Judgement:
    """The answer to one request: one order of a pair, or one rating."""
    verdict: str | None = None  # "A" | "B" | "TIE"; None when a pairwise answer did not parse
    ratings: dict[str, float] | None = None  # None when a rating answer did not parse
    critique: str | None = None
    raw: str | None = None  # the judge's text, as answered (None for a scoring judge)
    probs: dict[str, float] | None = None  # scoring judges: P(option) over the options
    created: str | None = None  # when the judge answered (from the cache on a replay)
    cached: bool = False
    api_calls: int = 0  # HTTP attempts this request cost, retries included; 0 when cached
    extra: dict = field(default_factory=dict)  # judge-specific provenance of this request


class Judge(Protocol):
    name: str  # the annotator id of its records: the judge model's name
    constitution: Constitution

    def judge_pair(self, prompt: str, first: str, second: str,
                   context: tuple[dict, ...] = ()) -> Judgement: ...

    def judge_rating(self, prompt: str, response: str,
                     context: tuple[dict, ...] = ()) -> Judgement: ...

    def provenance(self) -> dict: ...


@dataclass
class JudgeStats:
    n_items: int = 0
    n_requests: int = 0  # single requests (each order of a pair counts once)
    cache_hits: int = 0  # requests answered from the cache
    api_calls: int = 0  # HTTP attempts, retries included
    parse_failures: int = 0  # requests whose answer did not parse
    n_records: int = 0
    n_unjudged: int = 0  # items without a record: an order (or the rating) did not parse
    n_consistent: int = 0
    n_inconsistent: int = 0
    n_first: int = 0  # single requests that answered A (the response shown first)
    n_second: int = 0  # ... that answered B
    p_first: float | None = None
    position_bias: float | None = None  # 2 * p_first - 1, in [-1, 1]; 0 = no position preference
    inconsistency_rate: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _outcome(verdict: str, swapped: bool):
    """The verdict of one order as an index into the item's [a, b], or "tie"."""
    if verdict == "TIE":
        return "tie"
    shown_first = 1 if swapped else 0
    return shown_first if verdict == "A" else 1 - shown_first


def _map(fn, items: list, workers: int) -> list:
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _order_provenance(j: Judgement, swapped: bool) -> dict:
    out = {"swapped": swapped, "verdict": j.verdict}
    if j.critique:
        out["critique"] = j.critique
    if j.probs:
        out["probs"] = j.probs
    return {**out, **j.extra}


def judge_pairs(judge: Judge, items: Iterable[PairItem], *, workers: int = 1
                ) -> tuple[list[FeedbackRecord], JudgeStats]:
    """Each pair asked as (a, b) and as (b, a); one record per item whose two answers parsed.
    The record's `critique` is the unswapped order's (its A and B are the record's responses 0
    and 1); both orders' verdicts and critiques are in `provenance.orders`. `workers` > 1 sends
    requests concurrently (for an HTTP judge)."""
    items = list(items)
    asks = [(item, swapped) for item in items for swapped in (False, True)]

    def ask(job):
        item, swapped = job
        first, second = (item.b, item.a) if swapped else (item.a, item.b)
        return judge.judge_pair(item.prompt, first, second, item.context)

    answers = _map(ask, asks, workers)
    stats = JudgeStats(n_items=len(items), n_requests=len(asks))
    records = []
    base = judge.provenance()
    for i, item in enumerate(items):
        plain, swapped = answers[2 * i], answers[2 * i + 1]
        for j in (plain, swapped):
            stats.cache_hits += j.cached
            stats.api_calls += j.api_calls
            stats.parse_failures += j.verdict is None
        if plain.verdict is None or swapped.verdict is None:
            stats.n_unjudged += 1
            continue
        for v in (plain.verdict, swapped.verdict):
            stats.n_first += v == "A"
            stats.n_second += v == "B"
        o1, o2 = _outcome(plain.verdict, False), _outcome(swapped.verdict, True)
        consistent = o1 == o2
        stats.n_consistent += consistent
        stats.n_inconsistent += not consistent
        choice = o1 if consistent and o1 != "tie" else None
        prov = {**base, "position_consistent": consistent,
                "orders": [_order_provenance(plain, False), _order_provenance(swapped, True)]}
        strength = None
        if plain.probs and swapped.probs:
            # Lee et al. 2023: average the two orders' probabilities to cancel position bias.
            p0 = (plain.probs["A"] + swapped.probs["B"]) / 2
            prov["p_response_0"] = p0
            if choice is not None:
                strength = p0 if choice == 0 else 1 - p0
                prov["strength_scale"] = "P(chosen response) under the judge, mean of both orders"
        item_id = item.item_id or f"c{i:06d}"
        created = [j.created for j in (plain, swapped) if j.created]
        records.append(FeedbackRecord(
            id=f"{item_id}/{judge.name}", item_id=item_id, type="pairwise", prompt=item.prompt,
            context=list(item.context), prompt_id=item.prompt_id, responses=[item.a, item.b],
            choice=choice, tie=choice is None, strength=strength, critique=plain.critique or None,
            annotator={"id": judge.name}, source="ai", created=max(created) if created else None,
            provenance=prov))
    stats.n_records = len(records)
    decided = stats.n_first + stats.n_second
    if decided:
        stats.p_first = stats.n_first / decided
        stats.position_bias = (stats.n_first - stats.n_second) / decided
    if stats.n_consistent + stats.n_inconsistent:
        stats.inconsistency_rate = stats.n_inconsistent / (stats.n_consistent
                                                           + stats.n_inconsistent)
    return records, stats


def judge_ratings(judge: Judge, items: Iterable[RatingItem], *, workers: int = 1
                  ) -> tuple[list[FeedbackRecord], JudgeStats]:
    """One rating request per item; a `rating` record per answer that parsed (scale in
    `provenance.rating_scale`). The position fields of the stats stay None."""
    items = list(items)
    answers = _map(lambda it: judge.judge_rating(it.prompt, it.response, it.context), items,
                   workers)
    stats = JudgeStats(n_items=len(items), n_requests=len(items))
    lo, hi = RATING_SCALE
    base = {**judge.provenance(), "rating_scale": f"{lo}-{hi}"}
    records = []
    for i, (item, j) in enumerate(zip(items, answers)):
        stats.cache_hits += j.cached
        stats.api_calls += j.api_calls
        if j.ratings is None:
            stats.parse_failures += 1
            stats.n_unjudged += 1
            continue
        item_id = item.item_id or f"r{i:06d}"
        prov = {**base, **j.extra}
        records.append(FeedbackRecord(
            id=f"{item_id}/{judge.name}", item_id=item_id, type="rating", prompt=item.prompt,
            context=list(item.context), prompt_id=item.prompt_id, responses=[item.response],
            ratings=j.ratings, critique=j.critique or None, annotator={"id": judge.name},
            source="ai", created=j.created, provenance=prov))
    stats.n_records = len(records)
    return records, stats


# ---- an OpenAI-compatible HTTP judge -----------------------------------------------------------

def _transient(e: Exception) -> bool:
    """Worth retrying: timeouts, lost connections, rate limits, conflicts and server errors."""
    if isinstance(e, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(e, openai.APIStatusError) and (e.status_code in (408, 409, 429)
                                                     or e.status_code >= 500)


def _retry_after(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    try:
        return float(response.headers["retry-after"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _public_url(url: str) -> str:
    """The endpoint without user:password@ or a query string, fit for provenance."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class OpenAIJudge:
    """A judge behind any OpenAI-compatible `/chat/completions` endpoint.

    The API key is read from the environment variable named `api_key_env` and never stored in
    records, provenance or the cache. When it is unset and `base_url` is given, a placeholder
    key is sent, since local servers (vLLM, llama.cpp) accept any. Transient errors are retried
    up to `max_attempts` in all, waiting backoff_s * 2**(k-1) seconds after the k-th failure
    (at most backoff_max_s; longer if the server sends Retry-After); `sleep` is injectable.
    The client's own retries are off so that every attempt is counted here.
    """

    def __init__(self, constitution: Constitution, model: str, *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", cache_dir: str | Path | None = None,
                 temperature: float = 0.0, max_tokens: int | None = None, timeout_s: float = 60.0,
                 max_attempts: int = 5, backoff_s: float = 1.0, backoff_max_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        key = os.environ.get(api_key_env)
        if not key:
            if base_url is None:
                raise JudgeError(f"environment variable {api_key_env} is not set; set it to the "
                                 "API key, or give base_url for a local server that needs none")
            key = "not-needed"
        self.constitution, self.name = constitution, model
        self.temperature, self.max_tokens = temperature, max_tokens
        self.max_attempts, self.sleep = max_attempts, sleep
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s,
                                     max_retries=0)
        self.base_url = _public_url(str(self._client.base_url)).rstrip("/")
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None

    def provenance(self) -> dict:
        return {"judge": "openai-compatible", "model": self.name, "base_url": self.base_url,
                "temperature": self.temperature, **self.constitution.provenance()}

    def complete(self, messages: list[dict]) -> Judgement:
        """The judge's text for one chat request: from the cache, else from the endpoint."""
        request = {"model": self.name, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        key = request_key(request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return Judgement(raw=hit["content"], created=hit.get("created"), cached=True)
        content, calls = self._ask(request)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if self.cache is not None:
            self.cache.put(key, {"model": self.name, "content": content, "created": created})
        return Judgement(raw=content, created=created, api_calls=calls)

    def _ask(self, request: dict) -> tuple[str | None, int]:
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.chat.completions.create(**request)
                return response.choices[0].message.content, attempt
            except Exception as e:  # noqa: BLE001 -- _transient decides; the rest re-raise
                if not _transient(e):
                    raise
                if attempt == self.max_attempts:
                    raise JudgeError(f"{self.name} at {self.base_url}: gave up after "
                                     f"{attempt} attempts: {e}") from e
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
                if (after := _retry_after(e)) is not None:
                    delay = min(self.backoff_max_s, max(delay, after))
                self.sleep(delay)
        raise AssertionError("unreachable")

    def judge_pair(self, prompt, first, second, context=()) -> Judgement:
        j = self.complete(pairwise_messages(self.constitution, prompt, first, second,
                                            list(context)))
        parsed = parse_verdict(j.raw)
        if parsed:
            j.verdict, j.critique = parsed
        return j

    def judge_rating(self, prompt, response, context=()) -> Judgement:
        j = self.complete(rating_messages(self.constitution, prompt, response, list(context)))
        parsed = parse_ratings(j.raw, self.constitution.rating_aspects)
        if parsed:
            j.ratings, j.critique = parsed
        return j


# ---- an offline judge: a local causal LM scores the verdict line --------------------------------

class LocalLMJudge:
    """The same judge from a local causal LM directory (`from_pretrained`), without generation:
    the request is rendered with the tokenizer's chat template (or as plain `ROLE:` blocks when
    it has none) asking for the verdict line only, and the verdict is whichever of the
    continuations `VERDICT: A` and `VERDICT: B` the LM gives the higher log-probability (so it
    never answers TIE; its ties come from inconsistent orders). Ratings pick, aspect by aspect,
    the most likely `aspect: N`, each conditioned on the lines before it.

    It works with any tokenizer that can tell the options apart. Words outside a tokenizer's
    vocabulary become its unknown token: the lab world's word-level tokenizer knows none of
    "VERDICT: A" and cannot judge at all (a clear error), and its models never read a
    constitution. Each order's `unk_fraction` (share of unknown tokens in the request) is
    in provenance. A tiny model is a weak judge; this is the offline code path, not a result.
    """

    VERDICT_OPTIONS = ("A", "B")

    def __init__(self, constitution: Constitution, model_dir: str | Path, *,
                 name: str | None = None, device: str = "cpu"):
        self.constitution = constitution
        self.model_dir = Path(model_dir)
        self.name = name or self.model_dir.name
        self.model = load_causal_lm(self.model_dir).to(device)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.device = device
        config = self.model.config
        self.max_length = (getattr(config, "max_position_embeddings", None)
                           or getattr(config, "n_positions", None))
        options = [self.encode(f"VERDICT: {v}") for v in self.VERDICT_OPTIONS]
        if options[0] == options[1]:
            raise JudgeError(f"{self.model_dir}: the tokenizer encodes 'VERDICT: A' and "
                             f"'VERDICT: B' as the same tokens {options[0]} (words outside its "
                             "vocabulary become the unknown token), so this model cannot state "
                             "a verdict; use a tokenizer that can encode the request")

    def provenance(self) -> dict:
        return {"judge": "local-lm", "model": self.name, "model_dir": str(self.model_dir),
                **self.constitution.provenance()}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, messages: list[dict]) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
            return self.encode(text)  # the template writes its own special tokens
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + self.encode(render_text(messages))

    def _unk_fraction(self, ids: list[int]) -> float | None:
        unk = self.tokenizer.unk_token_id
        return None if unk is None or not ids else sum(t == unk for t in ids) / len(ids)

    @torch.no_grad()
    def _logprobs(self, prefix: list[int], options: list[list[int]]) -> list[float]:
        longest = len(prefix) + max(len(o) for o in options)
        if self.max_length and longest > self.max_length:
            raise JudgeError(f"{self.model_dir}: the judge request is {longest} tokens, the "
                             f"model reads at most {self.max_length}")
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else 0  # padded positions are masked out
        ids, mask, resp = response_batch([prefix] * len(options), options, pad)
        ids, mask, resp = ids.to(self.device), mask.to(self.device), resp.to(self.device)
        return sequence_logprobs(self.model, ids, mask, resp).tolist()

    def judge_pair(self, prompt, first, second, context=()) -> Judgement:
        prefix = self._prompt_ids(pairwise_messages(self.constitution, prompt, first, second,
                                                    list(context), critique=False))
        lp = self._logprobs(prefix, [self.encode(f"VERDICT: {v}") for v in self.VERDICT_OPTIONS])
        p = torch.tensor(lp).softmax(0).tolist()
        verdict = "A" if lp[0] > lp[1] else "B" if lp[1] > lp[0] else "TIE"
        return Judgement(verdict=verdict, probs={"A": p[0], "B": p[1]},
                         extra={"unk_fraction": self._unk_fraction(prefix)})

    def judge_rating(self, prompt, response, context=()) -> Judgement:
        prefix = self._prompt_ids(rating_messages(self.constitution, prompt, response,
                                                  list(context), critique=False))
        unk = self._unk_fraction(prefix)
        lo, hi = RATING_SCALE
        ratings, probs = {}, {}
        for aspect in self.constitution.rating_aspects:
            lines = [f"{aspect}: {k}" for k in range(lo, hi + 1)]
            options = [self.encode(line) for line in lines]
            if len({tuple(o) for o in options}) < len(options):
                raise JudgeError(f"{self.model_dir}: the tokenizer cannot tell the ratings "
                                 f"'{lines[0]}' ... '{lines[-1]}' apart")
            lp = self._logprobs(prefix, options)
            best = max(range(len(lp)), key=lp.__getitem__)
            ratings[aspect] = float(lo + best)
            probs[aspect] = torch.tensor(lp).softmax(0).tolist()
            prefix = prefix + options[best] + self.encode("\n")
        return Judgement(ratings=ratings, extra={"unk_fraction": unk, "rating_probs": probs})
