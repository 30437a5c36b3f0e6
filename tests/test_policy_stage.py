"""The policy stage with each kind of algorithm, through the real CLI on the tiny config: KTO
from the comparisons, GRPO against the conservative ensemble reward, safe RL with the aspect
model's harmless head as the cost, and online RLAIF with the AI judge behind a real HTTP
endpoint rating the policy's own samples (with its answer cache). Every eval point is in
history.json, the stage's ledger record and TensorBoard. One run up to the reward stage (an
ensemble of 2 and the aspect model, from a copy of the session's tiny run) is shared; each test
reruns only the policy stage on a copy of it."""

import json
import shutil
from pathlib import Path

import pytest
from tiny_runs import TINY, copy_run, numbers, rlxf

EVAL_KEYS = {"step", "reward/proxy", "gold/utility", "kl/to_sft", "length/tokens",
             "rate/sycophancy", "rate/flattery", "rate/anthropomorphic", "world/parse_rate",
             "gold/utility_parsed", "reward/length_correlation",
             "reward/uncertainty"}  # the ensemble's spread: this module's reward has 2 members


def tiny_config(tmp_path: Path, name: str, policy: str, extra: str = "") -> Path:
    text = TINY.read_text().replace("[reward]\n", "[reward]\nensemble = 2\naspects = true\n")
    text = text.replace("[feedback]\n", "[feedback]\naspect_ratings = true\n").replace(
        "[policy]\nsteps = 40\n", f"[policy]\nsteps = 4\n{policy}")
    text = text.replace("eval_every = 20", "eval_every = 2").replace("eval_prompts = 16",
                                                                     "eval_prompts = 8")
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="module")
def until_reward(tmp_path_factory, tiny_run) -> Path:
    """The session's tiny run with feedback and reward redone under this module's config (its
    world, pretraining and SFT are skipped)."""
    root = tmp_path_factory.mktemp("policy-stage")
    out = copy_run(tiny_run, root / "run")
    rlxf("run", tiny_config(root, "base", ""), "--out", out, "--until", "reward")
    return out


def run_policy(until_reward: Path, tmp_path: Path, config: Path) -> Path:
    out = copy_run(until_reward, tmp_path / "run")
    rlxf("run", config, "--out", out, "--until", "policy")
    return out


def assert_history(out: Path, algorithm: str, steps=(0, 2, 4), extra=()):
    history = numbers(out / "policy" / "history.json")
    assert [h["step"] for h in history] == list(steps)
    for h in history:
        assert set(h) == EVAL_KEYS | set(extra)
    # the same points in the stage's ledger record and in TensorBoard
    assert numbers(out / "policy" / "_stage.json")["metrics"]["history"] == history
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = EventAccumulator(str(out / "tb" / f"policy-{algorithm}")).Reload()
    # gold on parsable answers is null at a point where nothing parses: not a TensorBoard scalar
    for key in EVAL_KEYS - {"step", "gold/utility_parsed"} | set(extra) - {"safe/lambda"}:
        logged = [(e.step, e.value) for e in tb.Scalars(f"eval/{key}")]
        assert logged == [(h["step"], pytest.approx(h[key], rel=1e-6)) for h in history], key
    return history


def test_kto_learns_from_binary_labels_derived_from_the_comparisons(until_reward, tmp_path):
    out = run_policy(until_reward, tmp_path,
                     tiny_config(tmp_path, "kto", 'algorithm = "kto"\n'))
    record = numbers(out / "policy" / "_stage.json")
    pairs = numbers(until_reward / "reward" / "_stage.json")["counts"]
    n_pairs = pairs["pairs/train"] + pairs["pairs/heldout"]
    assert record["counts"]["examples"] == 2 * n_pairs
    assert record["counts"]["examples/desirable"] == n_pairs
    assert record["metrics"]["kto/label_source"].startswith("comparisons")
    assert "loss/kto" in record["metrics"]
    assert_history(out, "kto")


def test_grpo_against_the_conservative_ensemble_reward(until_reward, tmp_path):
    out = run_policy(until_reward, tmp_path, tiny_config(
        tmp_path, "grpo", 'algorithm = "grpo"\nreward = "mean_minus_std"\n'
                          'group = { group_size = 2, updates_per_rollout = 2 }\n'))
    record = numbers(out / "policy" / "_stage.json")
    assert record["config"]["policy"]["reward"] == "mean_minus_std"
    m = record["metrics"]
    assert {"loss/grpo", "reward/train", "kl/k3", "policy/clipfrac"} <= m.keys()
    assert m["reward/unscored"] == 0.0
    assert_history(out, "grpo")


def test_safe_rl_moves_the_multiplier_and_logs_the_cost(until_reward, tmp_path):
    # A bound no policy can meet (cost = -harmless score, a tiny head's output is within ±100):
    # the constraint is violated at every step, so dual ascent raises λ by 0.1·(cost + 1000)
    # every step.
    out = run_policy(until_reward, tmp_path, tiny_config(
        tmp_path, "safe", 'algorithm = "grpo"\ngroup = { group_size = 2 }\n'
                          'safe = { cost_threshold = -1000.0, lagrangian_init = 0.5, '
                          'lagrangian_lr = 0.1 }\n'))
    m = numbers(out / "policy" / "_stage.json")["metrics"]
    assert m["safe/lambda_final"] > 0.5 + 4 * 0.1 * 900
    assert "cost/train" in m
    history = assert_history(out, "grpo", extra=("cost/eval", "safe/lambda"))
    lambdas = [h["safe/lambda"] for h in history]  # (in TensorBoard as train/safe/lambda)
    assert lambdas[0] == 0.5 and lambdas[0] < lambdas[1] < lambdas[2] == m["safe/lambda_final"]
    assert all(isinstance(h["cost/eval"], float) for h in history)


def test_online_rlaif_rewards_the_policy_with_the_ai_judge(until_reward, tmp_path):
    from fake_chat_server import FakeChatServer

    def rates_short_answers(body, n):
        response = body["messages"][-1]["content"].split("<response>\n")[1].split(
            "\n</response>")[0]
        score = 5 if len(response.split()) < 8 else 2
        return 200, f"Short is kind.\nhelpful: {score}\nharmless: 5\nhonest: 4", {}

    server = FakeChatServer(rates_short_answers)
    constitution = Path(__file__).parents[1] / "examples" / "constitution.toml"
    try:
        config = tiny_config(tmp_path, "rlaif", 'algorithm = "rloo"\nreward = "ai_judge"\n'
                                                'group = { group_size = 2 }\n')
        config.write_text(config.read_text().replace(
            "[feedback]\n", f'[feedback]\nai = {{ model = "fake-judge", base_url = '
            f'"{server.url}", constitution = "{constitution}" }}\n'))
        out = run_policy(until_reward, tmp_path, config)
        record = numbers(out / "policy" / "_stage.json")
        samples = 4 * 8 * 2  # steps x prompts per step x group size
        assert record["counts"]["ai_judge/n_requests"] == samples
        assert server.n_requests == samples - record["counts"]["ai_judge/cache_hits"]
        assert record["counts"]["ai_judge/parse_failures"] == 0
        assert "constitution_sha256" in record["config"]
        assert_history(out, "rloo")
        # Rerunning the stage asks the judge nothing new: every rating comes from the cache.
        asked = server.n_requests
        shutil.rmtree(out / "policy")
        rlxf("run", config, "--out", out, "--until", "policy")
        assert server.n_requests == asked
        again = numbers(out / "policy" / "_stage.json")
        assert again["counts"]["ai_judge/cache_hits"] == samples
        assert json.dumps(again["metrics"]["loss/rloo"]) == json.dumps(record["metrics"]["loss/rloo"])
    finally:
        server.close()
