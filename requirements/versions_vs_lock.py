"""Print how the running environment's packages differ from requirements/lock.txt: the stack
rlxf is most sensitive to always, every other package only where its version differs."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

STACK = ("torch", "transformers", "trl", "peft", "accelerate", "tokenizers", "datasets")


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            sys.exit(f"{path}:{number}: expected NAME==VERSION, got {line!r}")
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def main(lock: Path) -> None:
    pins = read_lock(lock) if lock.exists() else {}
    if not pins:
        print(f"{lock}: no locked versions to compare with")
    print(f"{'package':<16} {'locked':<14} here")
    for name in STACK:
        print(f"{name:<16} {pins.get(name, '-'):<14} {installed(name)}")
    others = [(n, v, installed(n)) for n, v in sorted(pins.items())
              if n not in STACK and installed(n) != v]
    if others:
        print("other packages not at their locked version: " +
              ", ".join(f"{n} {v} -> {h}" for n, v, h in others))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements/lock.txt"))
