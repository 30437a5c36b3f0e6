"""The contract of RUN/eval/metrics.json written by `rlxf eval` (eval/policy_vs_reference.py),
which the audit reads (audit/real_eval.py): per model and for the policy − reference
difference, each metric as {value, ci95, n[, within_noise]}. `EvalMetrics.model_json_schema()`
gives it as JSON Schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float | None = Field(description="mean over prompts (null: nothing to measure)")
    ci95: list[float] | None = Field(min_length=2, max_length=2, description=(
        "95% percentile bootstrap interval, resampling prompts (probes/stats.py)"))
    n: int = Field(ge=0, description="prompts behind the number")


class Difference(Interval):
    within_noise: bool | None = Field(description="the interval spans 0 (null: no interval)")


class EvalMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(alias="schema", pattern=r"^rlxf\.eval\.metrics/1$")
    counts: dict[str, int]
    options: dict
    kl_estimator: str
    sources: dict[str, list[dict]]
    models: dict[str, dict[str, Interval]] = Field(description=(
        "policy and reference: reward/proxy, reward/SOURCE, gold/score, length/tokens, "
        "length/truncated, entropy/per_token, entropy/per_response, distinct/1, distinct/2; "
        "the policy also kl/to_reference and kl/sampled"))
    difference: dict[str, Difference] = Field(description=(
        "policy − reference, paired by prompt (the KL metrics: the policy's own, since the "
        "reference's KL to itself is 0)"))
