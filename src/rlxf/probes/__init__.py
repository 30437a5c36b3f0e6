"""The probe battery (docs/PROBES.md): sycophancy, over-refusal vs harmful compliance,
reward-model style bias and lexical behaviour rates, each on prompts written for rlxf with a
known right answer, for any policy (`generate`) or reward model (`score`) given as a callable;
importers for the public XSTest, Anthropic sycophancy and RM-Bench files. Library only: it
imports nothing from the rest of rlxf but `feedback.record.RecordError`."""
