"""How numbers read in the report's sentences, tables and cards (one place, so the HTML, the
Markdown, the cards and `rlxf compare` print the same number the same way)."""

from __future__ import annotations

from ..model_card import NULL  # noqa: F401 -- one glyph for a missing value, cards included


def num(v, digits: int = 3) -> str:
    """A table cell: ints as they are, floats to `digits` decimals, null as a dash."""
    if v is None:
        return NULL
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def f2(v) -> str:
    """A number in a sentence: two decimals."""
    return NULL if v is None else f"{v:.2f}"


def signed(v, digits: int = 2) -> str:
    """+0.12 / -0.12, and ±0.00 for a change that rounds to zero (no "-0.00")."""
    if v is None:
        return NULL
    text = f"{v:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def pct(v) -> str:
    """A share in a sentence: whole percent (one decimal below 1%, so 0.4% is not "0%")."""
    if v is None:
        return NULL
    p = 100 * v
    return f"{p:.1f}%" if 0 < abs(p) < 1 else f"{p:.0f}%"


def points(v) -> str:
    """A difference of two shares, in percentage points."""
    if v is None:
        return NULL
    n = abs(100 * v)
    return f"{n:.0f} point{'' if round(n) == 1 else 's'}"


def change(new, old, fmt=f2) -> str:
    """"up from X" / "down from X" / "the same as X" for a sentence."""
    if new is None or old is None:
        return f"against {fmt(old)}"
    a, b = fmt(new), fmt(old)
    if a == b:
        return f"the same as {b}"
    return f"{'up' if new > old else 'down'} from {b}"
