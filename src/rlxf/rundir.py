"""The run directory: stage artifacts, the append-only ledger, and resume.

Layout:
    RUN/config.toml          the resolved config of the last `rlxf run`
    RUN/ledger.jsonl         one line per completed stage (append-only)
    RUN/STAGE/               a completed stage's artifacts, with STAGE/_stage.json
    RUN/.partial/STAGE/      a stage being written; renamed to RUN/STAGE/ when complete
    RUN/.ckpt/STAGE/         resumable checkpoints of a stage in progress

A stage directory appears only by an atomic rename, so it is never half-written. It counts as
complete when its fingerprint (config section + input hashes) matches and its files still hash
to what `_stage.json` recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

STAGE_RECORD = "_stage.json"


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# Documentation derived from a sealed stage by `rlxf audit` (rlxf.audit.cards): a model card
# beside each saved model and a datasheet at a feedback stage's root. They describe the
# artifacts without being inputs of any stage, so writing or refreshing them must not make the
# stage look modified (which would rerun it and everything downstream). Paths are relative to
# the stage directory; only these exact paths are skipped, so any other change still counts.
DERIVED_DOCS = frozenset({"model/README.md", "DATASHEET.md"})


def hash_dir(path: Path) -> str:
    """Content hash of every file under `path` except the stage record and DERIVED_DOCS."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != STAGE_RECORD
                    and p.relative_to(path).as_posix() not in DERIVED_DOCS):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        _hash_file_into(h, f)
    return h.hexdigest()


def _hash_file_into(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    _hash_file_into(h, path)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary name in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide reports from a web server or a colleague
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows) -> int:
    lines = [json.dumps(r, sort_keys=True) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {i}: not valid JSON ({e.msg})") from None
    return rows


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def partial_dir(self, stage: str) -> Path:
        return self.root / ".partial" / stage

    def ckpt_dir(self, stage: str) -> Path:
        return self.root / ".ckpt" / stage

    def record(self, stage: str) -> dict | None:
        path = self.stage_dir(stage) / STAGE_RECORD
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def output_hash(self, stage: str) -> str:
        rec = self.record(stage)
        if rec is None:
            raise FileNotFoundError(f"{self.stage_dir(stage)}: stage {stage!r} has not completed")
        return rec["output_hash"]

    def is_complete(self, stage: str, fingerprint: str) -> bool:
        rec = self.record(stage)
        return (rec is not None and rec["fingerprint"] == fingerprint
                and hash_dir(self.stage_dir(stage)) == rec["output_hash"])

    def begin(self, stage: str, fingerprint: str) -> tuple[Path, Path]:
        """Fresh partial directory, and a checkpoint directory kept only if it belongs to
        the same fingerprint (same config and inputs): otherwise its state is stale."""
        partial, ckpt = self.partial_dir(stage), self.ckpt_dir(stage)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        marker = ckpt / "fingerprint"
        if ckpt.exists() and (not marker.exists() or marker.read_text() != fingerprint):
            shutil.rmtree(ckpt)
        if not ckpt.exists():
            ckpt.mkdir(parents=True)
            atomic_write_text(marker, fingerprint)
        return partial, ckpt

    def commit(self, stage: str, record: dict) -> dict:
        """Seal the partial directory as the stage's output and append the ledger line."""
        partial, final = self.partial_dir(stage), self.stage_dir(stage)
        record = {**record, "output_hash": hash_dir(partial)}
        atomic_write_json(partial / STAGE_RECORD, record)
        if final.exists():  # stale output of an older config: move aside, then delete
            trash = self.root / ".partial" / f"{stage}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            shutil.rmtree(trash)
        os.replace(partial, final)
        self.append_ledger(record)
        shutil.rmtree(self.ckpt_dir(stage), ignore_errors=True)
        return record

    def adopt(self, stage: str, source: "RunDir") -> dict:
        """Take `source`'s completed stage instead of recomputing it (the caller checked that its
        fingerprint, i.e. config slice and inputs, is this run's): its files are copied, not
        linked, so deleting the source later loses nothing here. The record keeps the source's
        timing (what the stage cost) and says where it came from."""
        partial = self.partial_dir(stage)
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source.stage_dir(stage), partial)
        record = {k: v for k, v in source.record(stage).items() if k != "output_hash"}
        return self.commit(stage, {**record, "reused_from": str(source.root.resolve())})

    def append_ledger(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        self.root.mkdir(parents=True, exist_ok=True)
        # One write of one line, then fsync: a crash leaves at worst a torn last line, which
        # `ledger()` ignores and the next run re-appends from the stage's own record.
        with open(self.ledger_path, "a+b") as fh:
            if fh.tell() > 0:  # end a torn line first, so this record stays on its own
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())

    def ledger(self) -> list[dict]:
        if not self.ledger_path.exists():
            return []
        rows = []
        for line in self.ledger_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash; its stage record still holds it
        return rows

    def ensure_ledgered(self, stage: str) -> None:
        """A crash between the rename and the ledger append leaves a complete stage without
        its line: restore it from the stage's record."""
        rec = self.record(stage)
        if rec and not any(r.get("fingerprint") == rec["fingerprint"]
                           and r.get("stage") == stage for r in self.ledger()):
            self.append_ledger(rec)

    def latest(self) -> dict[str, dict]:
        """The current record of every completed stage (what the report describes)."""
        out = {}
        for rec in self.ledger():
            stage = rec.get("stage")
            current = self.record(stage) if stage else None
            if current and current["fingerprint"] == rec["fingerprint"]:
                out[stage] = current
        return out
