"""Canonical feedback records with known answers for the reward-stage tests: k-wise rankings
and aspect ratings of lab-world responses, ordered by the gold judge."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rlxf.world.grammar import render
from rlxf.world.judge import candidate_contents, score
from rlxf.world.kb import KnowledgeBase
from rlxf.world.prompts import Prompt


def lab_world(run: Path) -> tuple[KnowledgeBase, dict, list[Prompt]]:
    meta = json.loads((run / "world" / "world.json").read_text())
    prompts = [Prompt.from_json(json.loads(line)["prompt"])
               for line in (run / "world" / "prompts.jsonl").read_text().splitlines()
               if json.loads(line)["split"] == "train"]
    return KnowledgeBase.from_json(meta["kb"]), meta["weights"], prompts


def gold_rankings(run: Path, n: int, k: int, seed: int = 0) -> list[dict]:
    """n ranking records of k responses each, ranked by gold utility (no ties), as an annotator
    who knows the gold judge would rank them."""
    kb, weights, prompts = lab_world(run)
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        p = rng.choice(prompts)
        cands = [render(r) for r in candidate_contents(p, kb)]
        utils = {t: score(p, t, kb).utility(weights) for t in cands}
        if len(set(utils.values())) < k:
            continue
        picked, seen = [], set()
        for t in rng.sample(cands, len(cands)):
            if round(utils[t], 9) not in seen:
                picked.append(t)
                seen.add(round(utils[t], 9))
            if len(picked) == k:
                break
        ranking = sorted(range(k), key=lambda i: -utils[picked[i]])
        rows.append({"id": f"r{len(rows):05d}", "item_id": f"r{len(rows):05d}", "type": "ranking",
                     "prompt": p.text, "prompt_id": p.id, "responses": picked,
                     "ranking": ranking, "annotator": {"id": "oracle", "group": "lab"},
                     "source": "human"})
    return rows
