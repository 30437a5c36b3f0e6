"""`python -m rlxf` is the `rlxf` command."""

from .cli import app

app(prog_name="rlxf")
