"""`rlxf serve MODEL_OR_RUN_DIR`."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape


def serve(path: Path = typer.Argument(..., metavar="MODEL_OR_RUN_DIR",
                                      help="a run directory (serves RUN/policy/model), a model "
                                           "directory, or a LoRA adapter directory"),
          host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8000, help="port to listen on"),
          name: str = typer.Option(None, help="the model's name in the API (default: the "
                                              "directory's name)"),
          device: str = typer.Option("auto", help="auto (CUDA when present, else the CPU; as "
                                                  "training picks it), cpu, cuda, cuda:N"),
          precision: str = typer.Option("auto", help="auto (bf16 on a GPU that runs it fast, "
                                                     "else fp32), fp32, bf16, fp16: the "
                                                     "weights' dtype while serving"),
          max_batch: int = typer.Option(8, min=1, help="most choices generated together in one "
                                                       "batch (1: one generation at a time)"),
          batch_window_ms: float = typer.Option(5.0, min=0, help="how long an idle server "
                                                                 "waits for more requests to "
                                                                 "batch with the first"),
          threads: int = typer.Option(0, help="torch threads (0: one per core)")) -> None:
    """Serve a model with an OpenAI-compatible API: /v1/models and /v1/chat/completions
    (streaming too; temperature, top_p, max_tokens, n, stop and seed honoured). Requests that
    arrive together are generated in one batch. Chat formatting uses the tokenizer's chat
    template, or the lab world's prompt format for a lab model."""
    import torch
    import uvicorn

    from ..console import console
    from .app import create_app
    from .model import ChatModel
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        model = ChatModel(path, name, device=device, precision=precision, max_batch=max_batch,
                          window_s=batch_window_ms / 1000)
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as e:
        console.print(f"[red]error[/red] {escape(str(e))}")
        raise typer.Exit(1) from None
    console.print(f"serving {escape(model.name)} ({escape(str(model.model_dir))}, chat format "
                  f"{model.chat.kind}, {model.device} {model.precision}, batches of up to "
                  f"{max_batch}) at http://{host}:{port}/v1")
    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")
