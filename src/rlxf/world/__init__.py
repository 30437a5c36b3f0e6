"""The laboratory world: a small, fully specified language of assistant conversations whose
true preferences are known (see docs/WORLD.md)."""

from .grammar import ParseError, Response, parse, render, try_parse
from .judge import GoldScores, score
from .kb import KnowledgeBase, build_kb
from .prompts import FAMILIES, Prompt, all_prompts, split_prompts

__all__ = ["FAMILIES", "GoldScores", "KnowledgeBase", "ParseError", "Prompt", "Response",
           "all_prompts", "build_kb", "parse", "render", "score", "split_prompts", "try_parse"]
