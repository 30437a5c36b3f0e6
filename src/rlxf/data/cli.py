"""`rlxf data import` and `rlxf data export`: public preference datasets in and out."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .formats import FORMATS

data_app = typer.Typer(
    no_args_is_help=True,
    help="Preference datasets in and out: import public datasets (HH-RLHF, UltraFeedback, "
         "PKU-SafeRLHF, HelpSteer2, SHP, TRL files) as canonical feedback records, and export "
         "pairwise records as TRL preference data. See docs/FEEDBACK.md, \"Importing datasets\".")
console = Console(stderr=True, soft_wrap=True)  # paths and errors stay on one line
SHOWN_REASONS = 5
FormatName = Enum("FormatName", {name: name for name in FORMATS}, type=str)
Source = Enum("Source", {name: name for name in ("human", "ai", "simulated")}, type=str)
ExportFormat = Enum("ExportFormat", {"trl": "trl"}, type=str)

IMPORT_HELP = (
    "Convert a dataset file (.jsonl, .jsonl.gz, .json as JSON Lines, or .parquet; read with "
    "the `datasets` library) into canonical feedback JSONL, one record per judgement. A row "
    "that does not match FORMAT stops the import with its file, line and field, unless "
    "--skip-invalid. OUT is written atomically: on an error it is not created (or keeps its "
    "old content).\n\nFormats:\n\n"
    + "\n\n".join(f"{f.name} ({f.dataset}): {f.summary}" for f in FORMATS.values()))


def _summary(title: str, counts: list[tuple[str, int]]) -> None:
    table = Table.grid(padding=(0, 2))
    for label, count in counts:
        table.add_row(f"  {label}", str(count))
    console.print(title)
    console.print(table)


def _fail(message: str) -> None:
    console.print(f"[red]error[/red] {escape(message)}")
    raise typer.Exit(1)


@data_app.command("import", help=IMPORT_HELP,
                  short_help="Convert a public preference dataset file to canonical feedback "
                             "JSONL.")
def import_(
        fmt: FormatName = typer.Argument(..., metavar="FORMAT",
                                         help="the dataset's format: " + ", ".join(FORMATS)),
        src: Path = typer.Argument(..., metavar="SRC", help="the dataset file (.jsonl, "
                                                            ".jsonl.gz, .json, .parquet)"),
        out: Path = typer.Option(..., "--out", help="canonical feedback JSONL to write"),
        skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                          help="skip and count invalid rows instead of "
                                               "stopping at the first"),
        source: Source = typer.Option(None, "--source",
                                      help="who judged, overriding the format's own (hh-rlhf, "
                                           "pku-saferlhf, helpsteer2, shp, trl: human; "
                                           "ultrafeedback*: ai)")) -> None:
    from ..feedback.record import RecordError
    from .importer import import_file
    try:
        result = import_file(fmt.value, src, out, skip_invalid, source and source.value)
    except RecordError as e:
        _fail(str(e))
    skipped = len(result.skipped)
    _summary(f"[green]imported[/green] {fmt.value}: {escape(str(src))} -> {escape(str(out))}",
             [(f"{result.unit}s read", result.rows), ("records written", result.records),
              *([("rows with nothing to judge", result.empty)] if result.empty else []),
              ("rows skipped (invalid)", skipped)])
    for reason in result.skipped[:SHOWN_REASONS]:
        console.print(f"    {escape(reason)}", highlight=False)
    if skipped > SHOWN_REASONS:
        console.print(f"    ... and {skipped - SHOWN_REASONS} more")


EXPORT_HELP = (
    "Export pairwise records as TRL preference data, one row per item: when several annotators "
    "judged the same item (same item_id), its majority preference; tie judgements and items "
    "without a majority are dropped and counted. Rating records (UltraFeedback, HelpSteer2) "
    "become one pair per prompt as UltraFeedback-binarized was built: the highest overall "
    "score chosen, a random (seeded) lower-scored response rejected; prompts whose responses "
    "all tie are dropped and counted. Records of other types are left out. Rows are "
    "TRL's standard {prompt, chosen, rejected} strings, or its conversational message lists "
    "when any record has earlier turns (context). OUT is written atomically.")


@data_app.command("export", help=EXPORT_HELP,
                  short_help="Export pairwise records as TRL preference JSONL (the majority "
                             "of each item).")
def export(
        src: Path = typer.Argument(..., metavar="SRC",
                                   help="canonical feedback JSONL (from `rlxf data import` or a "
                                        "run's feedback/feedback.jsonl)"),
        fmt: ExportFormat = typer.Option("trl", "--format",
                                         help="trl: TRL preference JSONL, prompt/chosen/rejected"),
        out: Path = typer.Option(..., "--out", help="the JSONL file to write")) -> None:
    from ..feedback.record import RecordError
    from .export import export_trl
    if not src.is_file():
        _fail(f"{src}: no such file")
    try:
        r = export_trl(src, out)
    except RecordError as e:
        _fail(str(e))
    style = "conversational" if r.conversational else "standard"
    _summary(f"[green]exported[/green] {fmt.value} ({style}): {escape(str(src))} -> "
             f"{escape(str(out))}",
             [("records read", r.records),
              ("neither pairwise nor rating (left out)", r.not_pairwise),
              ("items", r.items), ("items judged several times (majority exported)", r.several),
              ("tie judgements (dropped)", r.tie_judgements),
              ("items without a majority (dropped)", r.no_majority),
              *([("rating records", r.ratings.ratings),
                 ("rated prompts", r.ratings.prompts),
                 ("rated prompts binarised (best vs a random lower one)", r.ratings.pairs),
                 ("rated prompts all tied (dropped)", r.ratings.ties),
                 ("rated prompts with one response (dropped)", r.ratings.single)]
                if r.ratings.ratings else []),
              ("rows written", r.rows)])
    if r.rows == 0:
        console.print("[yellow]warning[/yellow] no rows: there was no pairwise preference "
                      "or rated pair to export")


@data_app.command("prompts", short_help="Write a lab run's held-out (or train) prompts as a "
                                        "prompt file for rlxf grpo / rlxf eval.")
def prompts(
        run_dir: Path = typer.Argument(..., metavar="RUN", help="a lab run directory "
                                       "(`rlxf run`)"),
        out: Path = typer.Option(..., "--out", help="the JSONL prompt file to write"),
        split: str = typer.Option("heldout", help="heldout or train")) -> None:
    """A lab run's prompts as JSONL rows {prompt, prompt_id, family}, which `rlxf eval
    --prompts` reads and `--gold gold:RUN` judges."""
    from .lab_prompts import export_prompts
    try:
        n = export_prompts(run_dir, out, split)
    except ValueError as e:
        _fail(str(e))
    console.print(f"[green]wrote[/green] {n} {split} prompts of {escape(str(run_dir))} -> "
                  f"{escape(str(out))}")


@data_app.command("multihop", short_help="Write a lab run's multi-step questions as SFT rows, "
                                         "prompt files and a start model for RL against its "
                                         "PRM or ORM.")
def multihop(
        run_dir: Path = typer.Argument(..., metavar="RUN", help="a lab run directory whose "
                                       "`process` stage ran ([process] enabled)"),
        out: Path = typer.Option(..., "--out", help="the directory to write (new or empty)"),
        n_demonstrations: int = typer.Option(2000, min=1, help="SFT rows, written by the "
                                             "process stage's fallible reasoner"),
        model: Path = typer.Option(None, help="the model to extend with the step format's "
                                   "words (default RUN/sft/model)"),
        seed: int = typer.Option(0)) -> None:
    """OUT/sft.jsonl (prompt/completion rows in the step format, some steps wrong),
    OUT/train.jsonl and OUT/heldout.jsonl (the process stage's split, as prompt files) and
    OUT/model (the lab model whose tokenizer knows the step format's words): `rlxf sft
    OUT/model OUT/sft.jsonl`, then `rlxf grpo SFT OUT/train.jsonl --reward prm:RUN` (or
    orm:RUN), then `rlxf eval ... --gold-steps RUN` (docs/EVAL.md)."""
    from .lab_multihop import export_multihop
    try:
        counts = export_multihop(run_dir, out, n_demonstrations=n_demonstrations, model=model,
                                 seed=seed)
    except ValueError as e:
        _fail(str(e))
    _summary(f"[green]wrote[/green] {escape(str(out))}", list(counts.items()))
