"""A model world ([world] model, prompts, gold): the pipeline's stages world, feedback, reward
and policy on any local causal LM, Gao et al.'s synthetic-gold experiment (docs/REAL_MODELS.md,
"The pipeline on a model world"). It joins stages/ (the lab's stage context and quality
control) to tune/ (the real-model recipes) and rewards/ (the gold SPEC); pipeline.py runs it."""
