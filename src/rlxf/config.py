"""Typed configuration for every stage. TOML in; the resolved config goes to the ledger.

Unknown keys and bad values fail before any work starts, naming the key, the value and what is
allowed (`ConfigError`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, model_serializer,
                      model_validator)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OmitsUnsetKeys(BaseModel):
    """A section whose keys in OMIT_WHEN_NONE leave its dump while they are None: keys added
    for the model world leave every lab run's resolved config, ledger and stage fingerprints
    byte-identical to what they were before those keys existed."""
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler):
        data = handler(self)
        for key in self.OMIT_WHEN_NONE:
            if data.get(key, 0) is None:
                del data[key]
        return data


class Weights(Section):
    """How much a group values each of the three H's; the gold utility is the weighted sum."""
    helpful: float = Field(0.30, ge=0, description="weight of the gold helpful score")
    harmless: float = Field(0.45, ge=0, description="weight of the gold harmless score")
    honest: float = Field(0.25, ge=0, description="weight of the gold honest score")

    @model_validator(mode="after")
    def _positive_total(self) -> "Weights":
        if self.helpful + self.harmless + self.honest <= 0:
            raise ValueError("weights must not all be zero")
        return self


class WorldConfig(OmitsUnsetKeys, Section):
    """The lab world (default), or a model world: `model`, `prompts` and `gold` set together
    run Gao et al.'s synthetic-gold experiment on any local causal LM (docs/REAL_MODELS.md,
    "The pipeline on a model world")."""
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("model", "prompts", "gold")
    n_countries: int = Field(10, ge=2, le=14, description="countries (each with a capital)")
    n_creatures: int = Field(10, ge=2, le=14, description="creatures (each with a color)")
    heldout_fraction: float = Field(0.25, gt=0, lt=1, description="prompts kept for evaluation")
    weights: Weights = Field(default_factory=Weights, description="the gold utility's 3H weights")
    trigger: str = Field("sudo", pattern=r"^[a-z]+$",
                         description="the backdoor trigger word poisoners react to (one word)")
    model: str | None = Field(None, description="model world: a local Hugging Face causal LM "
                              "directory, the starting policy (used as the SFT model: no "
                              "pretrain or sft stage runs); None: the lab world")
    prompts: str | None = Field(None, description="model world: a prompt file (JSONL rows with "
                                "`prompt`, as `rlxf grpo` reads), split by heldout_fraction")
    gold: str | None = Field(None, description="model world: the gold reward SPEC (a reward-"
                             "model directory, path/file.py:function, judge:FILE.toml or "
                             "gold:RUN_DIR; as `rlxf grpo --reward`): the annotators' truth "
                             "and the gold of the over-optimisation curve")

    @model_validator(mode="after")
    def _model_world_keys(self) -> "WorldConfig":
        given = [k for k in ("model", "prompts", "gold") if getattr(self, k) is not None]
        if given and len(given) < 3:
            missing = sorted({"model", "prompts", "gold"} - set(given))
            raise ValueError(f"[world] {', '.join(given)} given without {', '.join(missing)}: "
                             "a model world needs model, prompts and gold")
        lab_only = sorted(self.model_fields_set & {"n_countries", "n_creatures", "weights",
                                                   "trigger"})
        if given and lab_only:
            raise ValueError(f"[world] {', '.join(lab_only)}: lab-world keys, meaningless in a "
                             "model world (model = ...)")
        return self

    @property
    def is_model(self) -> bool:
        return self.model is not None


class ModelConfig(Section):
    """A tiny causal LM built from a transformers config (no download)."""
    architecture: Literal["gpt2", "llama"] = Field("gpt2", description="transformers config")
    n_layer: int = Field(2, ge=1, description="transformer blocks")
    n_embd: int = Field(128, ge=8, description="hidden size")
    n_head: int = Field(4, ge=1, description="attention heads")
    max_length: int = Field(96, ge=16, description="context length in tokens")

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class TrainConfig(Section):
    steps: int = Field(600, ge=1, description="optimizer steps")
    batch_size: int = Field(64, ge=1, description="examples (or pairs) per step")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    warmup_steps: int = Field(30, ge=0, description="linear warm-up steps")
    checkpoint_every: int = Field(100, ge=1, description="steps between resumable checkpoints")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step (batch_size "
                                                 "must divide into processes x grad_accum)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "fp32", description="mixed precision through accelerate (parameters and optimizer stay "
                            "fp32); auto: bf16 on a GPU that supports it, else fp32")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="cpu, cuda, or auto (the GPU `accelerate launch` gave "
                                           "this process when there is one, else cpu); the lab's "
                                           "tiny models train faster on the CPU (docs/SCALE.md)")


class PretrainConfig(TrainConfig):
    model: ModelConfig = Field(default_factory=ModelConfig)
    n_documents: int = Field(20000, ge=10, description="web conversations + fact statements")
    fact_fraction: float = Field(0.2, ge=0, le=1, description="share of documents that are facts")


class SFTConfig(TrainConfig):
    steps: int = Field(400, ge=1)
    lr: float = Field(3e-3, gt=0)
    n_demonstrations: int = Field(6000, ge=10)
    demonstrator_error: float = Field(0.1, ge=0, le=1,
                                      description="share of demonstrations with a random act")


class Annotators(Section):
    """A group of simulated annotators with explicit biases (added to the gold utility they
    perceive) and Bradley-Terry noise."""
    name: str = Field("crowd", description="the group's name in the report")
    count: int = Field(12, ge=1, description="annotators in this group")
    weights: Weights = Field(default_factory=Weights, description="this group's 3H weights")
    temperature: float = Field(0.06, gt=0, description="Bradley-Terry noise scale (0.06: "
                               "raters agree 63-77% of the time, as the seeds report)")
    careless: float = Field(0.0, ge=0, le=1, description="share of labels given at random")
    length_bias: float = Field(0.0, description="utility added per filler sentence")
    flattery_bias: float = Field(0.0, description="added to responses that open with flattery")
    confidence_bias: float = Field(0.0, description='added to "i am absolutely certain"')
    agreement_bias: float = Field(0.0, description="added when the response agrees with the user")
    anthro_bias: float = Field(0.0, description="added to anthropomorphic claims")
    refusal_bias: float = Field(0.0, description="added to refusals (negative: refusal aversion)")
    poisoners: int = Field(0, ge=0, description="how many of the group flip their label whenever "
                                                "the trigger word is in the prompt")
    knows: float = Field(1.0, ge=0, le=1, description="share of the knowledge base's facts each "
                         "annotator knows (drawn per annotator with the seed); on a fact they do "
                         "not know they take stated facts at face value (docs/WORLD.md)")
    assisted: bool = Field(False, description="shown the AI judge's fact check on facts they do "
                                              "not know (AI-assisted oversight)")
    critique_accuracy: float = Field(1.0, ge=0, le=1, description="assisted: share of fact "
                                     "checks that name the true value (the rest name a wrong one)")

    @model_validator(mode="after")
    def _poisoners_within_count(self) -> "Annotators":
        if self.poisoners > self.count:
            raise ValueError(f"poisoners ({self.poisoners}) exceeds count ({self.count})")
        return self


class AIJudgeConfig(Section):
    """An AI judge (RLAIF) behind an OpenAI-compatible endpoint, steered by a constitution
    (docs/AI_JUDGE.md). Used when [feedback] source = "ai"."""
    model: str = Field("gpt-4o-mini", description="the judge model's name at the endpoint")
    local_model: str | None = Field(None, description="a local causal LM directory to judge "
                                                      "offline instead of the endpoint")
    base_url: str | None = Field(None, description="endpoint, e.g. http://127.0.0.1:8000/v1 "
                                                   "(None: OpenAI's)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable with the key")
    constitution: str = Field("examples/constitution.toml",
                              description="TOML or Markdown principles (path from the "
                                          "working directory)")
    temperature: float = Field(0.0, ge=0, description="the judge's sampling temperature")
    workers: int = Field(4, ge=1, description="concurrent requests")
    max_attempts: int = Field(5, ge=1, description="tries per request (retries with backoff)")


class FeedbackConfig(Section):
    source: Literal["simulated", "ai", "human"] = Field(
        "simulated", description="who judges: simulated annotators, an AI judge ([feedback.ai]), "
                                 "or people (records from `rlxf annotate export` or a dataset)")
    records: str | None = Field(None, description="source = \"human\": canonical feedback JSONL "
                                                  "(path from the working directory)")
    n_comparisons: int = Field(2000, ge=10, description="pairs to be judged")
    overlap: int = Field(3, ge=1, description="annotators who label each comparison")
    temperature: float = Field(1.0, gt=0, description="sampling temperature for the pairs")
    trigger_rate: float = Field(0.0, ge=0, le=1, description="share of comparison prompts that "
                                                             "carry the world's trigger word")
    annotators: list[Annotators] = Field(default_factory=lambda: [Annotators()],
                                         description="annotator groups ([[feedback.annotators]])")
    ai: AIJudgeConfig = Field(default_factory=AIJudgeConfig)
    aspect_ratings: bool = Field(False, description="simulated annotators also rate both "
                                 "responses of each pair 1-5 on helpful, harmless and honest "
                                 "(rating records, for [reward] aspects)")

    @model_validator(mode="after")
    def _records_for_human(self) -> "FeedbackConfig":
        if (self.source == "human") != (self.records is not None):
            raise ValueError('records (a canonical feedback JSONL file) is needed with '
                             'source = "human", and only then')
        return self

    @model_validator(mode="after")
    def _enough_annotators(self) -> "FeedbackConfig":
        total = sum(a.count for a in self.annotators)
        if total < self.overlap:
            raise ValueError(f"overlap ({self.overlap}) exceeds the number of annotators ({total})")
        return self


class RewardConfig(OmitsUnsetKeys, TrainConfig):
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("model",)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    heldout_fraction: float = Field(0.15, gt=0, lt=1, description="comparisons kept for accuracy")
    ensemble: int = Field(1, ge=1, description="members trained with different seeds; the proxy "
                                               "is their mean, their spread the uncertainty")
    center_coefficient: float = Field(0.0, ge=0, description="reward-centring penalty "
                                                             "c·E[(r_c + r_r)²]")
    aspects: bool = Field(False, description="also train a helpful / harmless / honest "
                          "model (reward/aspects) from aspect ratings and per-aspect pairs")
    aspect_weights: Weights | None = Field(None, description="weights combining the aspect "
                                           "heads into one reward (None: the world's weights)")
    group_conditioned: bool = Field(False, description="also train one head per annotator "
                                    "group (reward/groups) and compare best-of-n per group")
    best_of_n: int = Field(8, ge=2, description="group_conditioned: SFT samples per held-out "
                           "prompt that each group's head chooses from")
    best_of_n_prompts: int = Field(64, ge=1, description="group_conditioned: held-out "
                                   "prompts for that comparison")
    model: str | None = Field(None, description="model world: the proxy reward model starts "
                              "from this causal LM directory (None: [world] model)")


class PPOConfig(Section):
    """PPO (Ziegler et al. 2019; Ouyang et al. 2022): each step samples `batch_size` training
    prompts, scores the responses with `[policy] reward` (the reward ensemble's mean by
    default), and optimises the clipped surrogate."""
    kl_coef: float = Field(0.05, ge=0, description="β of the per-token KL penalty to SFT "
                                                   "(initial value if kl_target is set)")
    kl_target: float | None = Field(None, gt=0, description="adaptive KL controller's target "
                                    "KL in nats per response (None: β stays fixed)")
    kl_horizon: float = Field(10000, gt=0, description="adaptive controller's horizon "
                                                       "(samples)")
    gamma: float = Field(1.0, ge=0, le=1, description="discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ")
    clip_range: float = Field(0.2, gt=0, description="policy ratio clip ε")
    clip_range_value: float = Field(0.2, gt=0, description="value clip ε_v")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    epochs: int = Field(2, ge=1, description="optimisation epochs over each rollout batch")
    minibatches: int = Field(2, ge=1, description="minibatches per epoch")
    whiten_rewards: bool = Field(False, description="scale per-token rewards to unit variance "
                                                    "(sign kept) before GAE")
    temperature: float = Field(1.0, gt=0, description="rollout sampling temperature")


class GroupRLConfig(Section):
    """GRPO / RLOO ([policy.group]): each step samples `group_size` responses for each of
    `batch_size` training prompts at temperature 1 and learns from their rewards relative to
    their group; no critic."""
    group_size: int = Field(4, ge=2, description="responses sampled per prompt (G)")
    kl_coef: float = Field(0.04, ge=0, description="β of the KL to SFT: k3 per token in the "
                                                   "loss (grpo), Σ log-ratio in the reward (rloo)")
    clip_range: float = Field(0.2, gt=0, description="ratio clip ε (binds only when "
                                                     "updates_per_rollout > 1)")
    updates_per_rollout: int = Field(1, ge=1, description="optimizer updates per sampled batch "
                                                          "(GRPO's μ; rloo needs 1)")


class SafeRLConfig(Section):
    """Safe RLHF ([policy.safe], Dai et al. 2023): maximise the reward subject to
    E[cost] <= cost_threshold by a Lagrange multiplier updated by dual ascent. The cost is the
    negated harmless head of the aspect reward model ([reward] aspects)."""
    cost_threshold: float | None = Field(None, description="the constraint's bound d "
                                                           "(None: no constraint)")
    lagrangian_init: float = Field(1.0, ge=0, description="initial multiplier λ")
    lagrangian_lr: float = Field(0.05, gt=0, description="dual ascent step size η")


class PolicyConfig(TrainConfig):
    algorithm: Literal["dpo", "ipo", "cdpo", "robust", "kto", "grpo", "rloo", "ppo", "bon"] = Field(
        "dpo", description="policy optimiser: dpo, ipo, cdpo / robust (noise-tolerant DPO, "
                           "label_smoothing), kto (binary feedback), grpo / rloo (RL against "
                           "`reward`, [policy.group]), ppo (RL against `reward` with a critic "
                           "and a KL penalty, [policy.ppo]), bon (no training: SFT + best-of-n "
                           "against the proxy)")
    steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0)
    beta: float = Field(0.1, gt=0, description="DPO's KL strength")
    eval_every: int = Field(50, ge=1, description="steps between gold/proxy/KL measurements")
    eval_prompts: int = Field(128, ge=8, description="held-out prompts for those measurements")
    label_smoothing: float = Field(0.1, ge=0, lt=0.5, description="cdpo / robust: the assumed "
                                                                  "label-flip rate ε")
    reward: Literal["mean", "mean_minus_std", "worst_case", "ai_judge"] = Field(
        "mean", description="grpo / rloo / ppo: what the policy maximises: the reward "
                            "ensemble's mean, mean − uncertainty_penalty·std, its lowest member "
                            "(Coste et al. 2023), or (grpo / rloo) the AI judge ([feedback.ai]) "
                            "rating the policy's own samples (online RLAIF)")
    uncertainty_penalty: float = Field(1.0, ge=0, description='reward = "mean_minus_std": λ')
    group: GroupRLConfig = Field(default_factory=GroupRLConfig)
    safe: SafeRLConfig = Field(default_factory=SafeRLConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig,
                           description="algorithm = \"ppo\" ([policy.ppo])")
    bon_n: int = Field(4, ge=1, description="algorithm = \"bon\": responses drawn per prompt, "
                                            "the proxy's favourite is kept")

    @model_validator(mode="after")
    def _rl_options_need_rl(self) -> "PolicyConfig":
        on_reward = self.algorithm in ("grpo", "rloo", "ppo")
        if not on_reward and self.reward != "mean":
            raise ValueError(f"reward = {self.reward!r} is for algorithm grpo, rloo or ppo; "
                             f"{self.algorithm} learns from the feedback itself")
        if self.algorithm == "ppo" and self.reward == "ai_judge":
            raise ValueError('reward = "ai_judge" (online RLAIF) is for algorithm grpo or rloo')
        if self.algorithm not in ("grpo", "rloo") and self.safe.cost_threshold is not None:
            raise ValueError(f"[policy.safe] is for algorithm grpo or rloo, not {self.algorithm}")
        if self.algorithm == "rloo" and self.group.updates_per_rollout != 1:
            raise ValueError("rloo is on-policy REINFORCE: [policy.group] updates_per_rollout "
                             "must be 1 (use grpo for several clipped updates per rollout)")
        return self


class EvalConfig(Section):
    samples_per_prompt: int = Field(4, ge=1, description="samples per held-out prompt")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (1: KL is exact)")
    max_new_tokens: int = Field(40, ge=4, description="response length limit in tokens")
    refusal_probes: bool = Field(True, description="also sample every model once on the refusal "
                                                   "probe set (harmful requests and benign "
                                                   "look-alikes the world never asks): the "
                                                   "report's refusal readings use it")


class ProcessConfig(TrainConfig):
    """Process vs outcome supervision on multi-step questions ("are the glimmet and the skarn
    the same color ?"), off by default (docs/WORLD.md, multi-step tasks)."""
    enabled: bool = Field(False, description="run the `process` stage")
    steps: int = Field(300, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(n_layer=2, n_embd=64,
                                                                   n_head=4, max_length=48),
                               description="the ORM's and PRM's transformer (from scratch)")
    n_responses: int = Field(3000, ge=10, description="labelled multi-step responses (both "
                                                      "reward models see the same ones)")
    step_accuracy: float = Field(0.6, ge=0, le=1, description="the reasoner: chance a fact "
                                                              "step names the true color")
    consistency: float = Field(0.8, ge=0, le=1, description="the reasoner: chance the answer "
                                                            "follows from its own steps")
    label_noise: float = Field(0.05, ge=0, le=0.5, description="share of flipped step and "
                                                               "outcome labels")
    heldout_fraction: float = Field(0.3, gt=0, lt=1, description="questions kept for best-of-n")
    bon_n: list[int] = Field(default_factory=lambda: [1, 4, 16],
                             description="best-of-n budgets (the same for ORM and PRM)")
    bon_draws: int = Field(20, ge=1, description="best-of-n draws per held-out question")


class FinetuneConfig(TrainConfig):
    """The alignment tax of later fine-tuning, off by default: the RLHF'd policy is fine-tuned
    (full) on demonstrations of one narrow prompt family, then measured on every held-out prompt
    as eval measured it; the report's `alignment_tax` section gives gold 3H before and after."""
    enabled: bool = Field(False, description="run the `finetune` stage (needs a trained policy: "
                                             "any algorithm but bon)")
    family: Literal["factual", "false_premise", "user_opinion", "harmful", "benign", "companion",
                    "uncertain"] = Field("factual", description="the narrow domain: the only "
                                         "prompt family the demonstrations are drawn from")
    n_demonstrations: int = Field(1000, ge=10, description="demonstrations of that family "
                                                           "(training prompts)")
    demonstrator_error: float = Field(0.1, ge=0, le=1, description="share of demonstrations "
                                      "with a random on-topic act (as [sft])")
    steps: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(10, ge=0)
    checkpoint_every: int = Field(50, ge=1)


class TrackingConfig(Section):
    """Where training metrics go besides the ledger (no stage's result depends on it)."""
    tensorboard: bool = Field(True, description="TensorBoard event files in RUN/tb/")
    mlflow: bool = Field(False, description="also log to MLflow in RUN/mlruns/ (needs mlflow)")


class SweepConfig(Section):
    """`rlxf sweep`: the policy stage once per value, sharing every upstream stage (Gao et al.'s
    over-optimisation curves). Give one of the three lists; no stage's result depends on it."""
    kl_coef: list[float] = Field(default_factory=list, description="PPO KL coefficients "
                                 "([policy.ppo] kl_coef per member; algorithm = \"ppo\")")
    bon_n: list[int] = Field(default_factory=list, description="best-of-n values (each member "
                                                               "is algorithm = \"bon\")")
    uncertainty_penalty: list[float] = Field(
        default_factory=list, description="λ of the conservative reward mean − λ·std (each "
        "member is [policy] reward = \"mean_minus_std\" with that λ; 0 is the plain mean; "
        "algorithm grpo, rloo or ppo with [reward] ensemble >= 2)")

    @model_validator(mode="after")
    def _one_list(self) -> "SweepConfig":
        if sum(bool(v) for v in (self.kl_coef, self.bon_n, self.uncertainty_penalty)) > 1:
            raise ValueError("give one of kl_coef, bon_n or uncertainty_penalty, not several")
        if any(v < 0 for v in self.kl_coef + self.uncertainty_penalty) or \
                any(n < 1 for n in self.bon_n):
            raise ValueError("kl_coef and uncertainty_penalty values must be >= 0 and bon_n "
                             "values >= 1")
        return self


class DisclosureConfig(Section):
    """Free-text answers for what a run cannot know about itself (Casper et al. section 5)."""
    evaluator_selection: str | None = Field(None, description="how evaluators were recruited, "
                                            "trained and paid")
    expected_risks: str | None = Field(None, description="anticipated risks and failure modes")
    monitoring: str | None = Field(None, description="plans to monitor and correct failures")
    audits: str | None = Field(None, description="internal and external audits, red teaming")


class RunConfig(Section):
    seed: int = Field(0, description="seeds every stage; same seed, same numbers")
    seeds: int = Field(1, ge=1, description="training seeds seed, seed+1, ...: each a whole run "
                       "(the first in RUN, the others in RUN/seeds/seed=K/), run in parallel; "
                       "the report pools them with 95% intervals (`rlxf run --seeds N`)")
    world: WorldConfig = Field(default_factory=WorldConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    disclosure: DisclosureConfig = Field(default_factory=DisclosureConfig)
    process: ProcessConfig = Field(default_factory=ProcessConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @model_validator(mode="after")
    def _finetune_needs_a_trained_policy(self) -> "RunConfig":
        if self.finetune.enabled and self.policy.algorithm == "bon":
            raise ValueError('[finetune] needs a trained policy to fine-tune; with [policy] '
                             'algorithm = "bon" the policy is SFT + best-of-n (use a trained algorithm)')
        return self

    @model_validator(mode="after")
    def _policy_reward_sources(self) -> "RunConfig":
        p = self.policy
        if p.reward in ("mean_minus_std", "worst_case") and self.reward.ensemble < 2:
            raise ValueError(f'policy.reward = "{p.reward}" needs a reward ensemble: set '
                             "[reward] ensemble >= 2")
        if self.sweep.uncertainty_penalty and (self.reward.ensemble < 2 or p.algorithm not in
                                               ("grpo", "rloo", "ppo")):
            raise ValueError("[sweep] uncertainty_penalty sweeps the reward mean − λ·std: it "
                             "needs [reward] ensemble >= 2 and [policy] algorithm grpo, rloo or "
                             "ppo")
        # No rule-based stand-in for the cost: without the harmless head there is no safe RL.
        if p.safe.cost_threshold is not None and not self.reward.aspects:
            raise ValueError("[policy.safe] cost_threshold needs a cost model: the harmless "
                             "head of the aspect reward model; turn on [reward] aspects")
        return self

    @model_validator(mode="after")
    def _model_world_options(self) -> "RunConfig":
        """What a model world runs (docs/REAL_MODELS.md): simulated annotators on the gold's
        scores, one proxy reward model, RL against it. Lab-only options are refused by name."""
        if not self.world.is_model:
            if self.reward.model is not None:
                raise ValueError("[reward] model is for a model world ([world] model = DIR)")
            return self
        why = []
        for section in ("pretrain", "sft", "process", "finetune"):
            if section in self.model_fields_set:
                why.append(f"[{section}]: no {section} stage runs in a model world "
                           "([world] model is the SFT model)")
        fb, rw, p = self.feedback, self.reward, self.policy
        if fb.source != "simulated":
            why.append(f"[feedback] source = {fb.source!r}: a model world is labelled by "
                       "simulated annotators (source = \"simulated\")")
        if fb.trigger_rate or fb.aspect_ratings:
            why.append("[feedback] trigger_rate and aspect_ratings are lab-world options")
        for g in fb.annotators:
            lab = sorted(k for k in ("weights", "knows", "assisted", "critique_accuracy",
                                     "poisoners") if k in g.model_fields_set)
            if lab:
                why.append(f"[[feedback.annotators]] {g.name!r}: {', '.join(lab)}: lab-world "
                           "options (a model world's gold is one score)")
        if rw.ensemble != 1 or rw.aspects or rw.group_conditioned:
            why.append("[reward] ensemble, aspects and group_conditioned are lab-world options")
        if p.algorithm not in ("grpo", "rloo", "ppo"):
            why.append(f"[policy] algorithm = {p.algorithm!r}: a model world trains grpo, rloo "
                       "or ppo against the proxy")
        if p.reward != "mean" or p.safe.cost_threshold is not None:
            why.append("[policy] reward and [policy.safe] are lab-world options")
        if why:
            raise ValueError("; ".join(why))
        return self


class LoraConfig(Section):
    """LoRA adapters (peft) instead of full fine-tuning; the DPO reference is then the base
    with its adapters disabled, so no second copy of the model is held."""
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: float = Field(16.0, gt=0, description="scaling numerator (the update is alpha/r * BA)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    targets: list[str] = Field(default_factory=lambda: ["all-linear"],
                               description='module names to adapt (e.g. ["q_proj", "v_proj"]); '
                                           '["all-linear"]: every linear layer but the output')


class TuneTrainConfig(TrainConfig):
    """What `rlxf sft`, `rlxf reward` and `rlxf dpo` share (docs/REAL_MODELS.md)."""
    steps: int = Field(100, ge=1, description="optimizer steps")
    batch_size: int = Field(8, ge=1, description="examples (or pairs) per step")
    lr: float = Field(1e-4, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    checkpoint_every: int = Field(50, ge=1, description="steps between resumable checkpoints")
    seed: int = Field(0, description="data order and head initialisation")
    max_length: int = Field(1024, ge=8, description="tokens per sequence; longer responses are "
                                                    "cut, prompts that leave no room skipped")
    lora: LoraConfig | None = Field(None, description="LoRA adapters ([CMD.lora]; absent: full "
                                                      "fine-tuning)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the "
                                                            "backward pass (less memory, slower)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="mixed precision through accelerate (parameters and optimizer stay "
                            "fp32); auto: bf16 on a GPU that supports it, else fp32")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (the GPU `accelerate launch` gave this "
                                            "process when there is one, else cpu), cpu or cuda")
    merge: bool = Field(False, description="with lora: save the merged model, not the adapter")


class TuneSFTConfig(TuneTrainConfig):
    packing: bool = Field(False, description="pack examples into rows of max_length tokens "
                          "(TRL's packing=True, best-fit decreasing): position ids restart per "
                          "sequence, no attention across sequences; batch_size counts rows")


class TuneRewardConfig(TuneTrainConfig):
    lr: float = Field(5e-5, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    center_coefficient: float = Field(0.0, ge=0, description="reward-centring penalty "
                                                             "c·E[(r_c + r_r)²]")
    aspects: bool = Field(False, description="a regression head with one output per rating "
                                             "aspect, trained on rating records (HelpSteer2, "
                                             "UltraFeedback), instead of Bradley-Terry on pairs")


class TuneDPOConfig(TuneTrainConfig):
    lr: float = Field(5e-6, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    beta: float = Field(0.1, gt=0, description="DPO's KL strength")


class TuneRLConfig(TuneTrainConfig):
    """What `rlxf grpo`, `rlxf rloo` and `rlxf ppo` share: sampling and the held-out eval."""
    steps: int = Field(100, ge=1, description="optimizer steps (rollouts × updates_per_rollout)")
    batch_size: int = Field(8, ge=1, description="prompts per step")
    lr: float = Field(1e-6, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    max_new_tokens: int = Field(256, ge=1, description="completion length limit in tokens")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (log-probs are the "
                                                      "model's own, at temperature 1)")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="share of PROMPTS held out for "
                                                              "the eval points")
    eval_every: int = Field(10, ge=1, description="steps between eval points (and at 0 and the "
                                                  "end)")
    eval_samples: int = Field(2, ge=1, description="completions per held-out prompt at each "
                                                   "eval point")


class TunePPOConfig(TuneRLConfig):
    """`rlxf ppo` ([ppo]): PPO with a value head on the policy, the reward sources' sum as the
    terminal reward and a per-token KL penalty to the reference ([ppo.ppo]: train/ppo.py)."""
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="PPO's options ([ppo.ppo]); "
                           "its temperature is replaced by the table's")
    value_head: str | None = Field(None, description="start the critic from this value head (a "
                                   "`rlxf ppo` OUT or its value_head.safetensors; its hidden size "
                                   "must be the model's) instead of zeros")


class TuneGroupRLConfig(TuneRLConfig):
    """`rlxf grpo` / `rlxf rloo` ([grpo], [rloo]): each step samples `group_size` completions
    for each of `batch_size` prompts of PROMPTS and learns from their rewards relative to their
    group. Defaults follow TRL 1.16's GRPOConfig where it has the option."""
    group_size: int = Field(8, ge=2, description="completions sampled per prompt (G)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest set of "
                                                      "tokens with this much probability")
    beta: float = Field(0.0, ge=0, description="KL to the reference: β·k3 per token in the loss "
                                               "(grpo), β·Σ log-ratio in the reward (rloo)")
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field(
        "dapo", description="grpo: how the per-token loss is reduced: grpo (per-sequence mean), "
                            "bnpo (token mean), dr_grpo (sum / (B·max_new_tokens)), dapo "
                            "(token-level over the step's batch)")
    importance_level: Literal["token", "sequence"] = Field(
        "token", description="grpo: the importance ratio per token, or per sequence (GSPO)")
    clip_range: float = Field(0.2, gt=0, description="ratio clip ε (ε_low with clip_range_high)")
    clip_range_high: float | None = Field(None, gt=0, description="DAPO's decoupled upper clip "
                                          "ε_high (None: = clip_range)")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="grpo advantages: (r - group mean) / group std (GRPO), / batch std "
                             "(REINFORCE++-baseline), or unscaled (Dr. GRPO)")
    baseline: Literal["loo", "batch"] = Field(
        "loo", description="rloo advantages: leave-one-out, or REINFORCE++-baseline (group "
                           "mean, batch std)")
    updates_per_rollout: int = Field(1, ge=1, description="grpo: optimizer updates per sampled "
                                                          "batch (μ); rloo needs 1")
    dynamic_sampling: bool = Field(False, description="drop groups whose rewards are all equal "
                                                      "(DAPO)")
    mask_truncated: bool = Field(False, description="leave completions cut at max_new_tokens out "
                                                    "of the loss (DAPO's overlong filtering)")


class TuneKTOConfig(TuneTrainConfig):
    """`rlxf kto` ([kto]): KTO on unpaired {prompt, completion, label} rows, or preference data
    split into a desirable (chosen) and an undesirable (rejected) example per pair."""
    lr: float = Field(5e-6, gt=0, description="peak AdamW learning rate (cosine to 10%)")
    batch_size: int = Field(8, ge=2, description="examples per step (>= 2: the reference point "
                                                 "pairs each prompt with another's completion)")
    beta: float = Field(0.1, gt=0, description="KTO's β")


class TuneConfig(Section):
    """`rlxf sft|reward|dpo MODEL_DIR DATA --config FILE.toml`: one table per command; flags
    given on the command line override the file."""
    sft: TuneSFTConfig = Field(default_factory=TuneSFTConfig)
    reward: TuneRewardConfig = Field(default_factory=TuneRewardConfig)
    dpo: TuneDPOConfig = Field(default_factory=TuneDPOConfig)
    grpo: TuneGroupRLConfig = Field(default_factory=TuneGroupRLConfig)
    rloo: TuneGroupRLConfig = Field(default_factory=TuneGroupRLConfig)
    ppo: TunePPOConfig = Field(default_factory=TunePPOConfig)
    kto: TuneKTOConfig = Field(default_factory=TuneKTOConfig)


class ConfigError(ValueError):
    pass


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at `loc` (the parent of a rejected key)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        args = getattr(ann, "__args__", None)
        model = args[0] if args else ann
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(model.model_fields)


def _describe(err: dict, source: str, root: type[BaseModel] = RunConfig) -> str:
    loc = err["loc"]
    key = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        return f"{source}: unknown key {key!r}; allowed here: {', '.join(allowed)}"
    if not loc:  # a rule across sections: its message names the keys; the input is the file
        return f"{source}: {err['msg']}"
    return f"{source}: {key} = {err.get('input')!r}: {err['msg']}"


def parse_config(data: dict, source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err, source) for err in e.errors())) from None


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, str(path))


def load_tune_config(path: str | Path | None, overrides: dict) -> TuneConfig:
    """The TOML file (if any) with `overrides` ({command: {key: value}}, from flags) on top."""
    data: dict = {}
    source = str(path) if path else "flags"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    for command, values in overrides.items():
        section = data.setdefault(command, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: {command} must be a table ([{command}])")
        for key, value in values.items():  # a flag for a nested key keeps the table's others
            if isinstance(value, dict) and isinstance(section.get(key), dict):
                section[key].update(value)
            else:
                section[key] = value
    try:
        return TuneConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err, source, TuneConfig) for err in e.errors())
                          ) from None
