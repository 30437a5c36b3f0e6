"""`rlxf annotate ...`: serve the human feedback web app, bootstrap an admin, export.

Heavy imports (FastAPI, SQLAlchemy, uvicorn) stay inside the commands so `rlxf --help` is fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

annotate_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="The human feedback web app (docs/ANNOTATE.md).")

DB_HELP = "a SQLite file (WAL mode) or a postgresql://USER@HOST:PORT/DB URL"


def _store(db: str):
    from ..store import Store
    try:
        store = Store(db)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    store.migrate()
    return store


def _new_admin(store, note: str) -> tuple[str, str]:
    from ..store import Annotator
    from .security import issue_invite, new_pid
    with store.write() as s:
        a = Annotator(pid=new_pid(), role="admin", note=note)
        token = issue_invite(a)
        s.add(a)
    return a.pid, token


@annotate_app.command()
def serve(db: str = typer.Option("annotate.db", "--db", help=DB_HELP),
          host: str = typer.Option("127.0.0.1", help="listen address"),
          port: int = typer.Option(8000, help="listen port"),
          workers: int = typer.Option(1, help="processes (on SQLite one is fastest: writes "
                                                "queue on a lock inside the process)"),
          data_dir: Path = typer.Option(Path("."), "--data-dir",
                                        help="admins may import run directories and JSONL "
                                             "files below this directory by path"),
          access_log: bool = typer.Option(False, help="log every request"),
          submit_rate: float = typer.Option(5.0, min=0, help="label submissions per second "
                                                              "per account (0: no limit)"),
          submit_burst: int = typer.Option(20, min=1, help="submissions an account may send "
                                                           "at once before the rate applies"),
          public_url: str = typer.Option(None, help="where people reach the app, e.g. "
                                                    "https://annotate.example.org (invite links "
                                                    "use it; default http://HOST:PORT)"),
          secure_cookies: bool = typer.Option(None, "--secure-cookies/--no-secure-cookies",
                                              help="mark the session cookie Secure (default: "
                                                   "when the request came over HTTPS)"),
          login_burst_per_address: int = typer.Option(
              100, min=1, help="sign-in attempts one client address may make at once (then one "
                               "a second); each account: 40, then one per 10 minutes")
          ) -> None:
    """Start the app. Migrates the schema first; on an empty database it creates an admin and
    prints their one-time sign-in link."""
    import uvicorn
    from sqlalchemy import select

    from ..store import Annotator
    from .app import create_app
    from .signin import SignInGuard

    store = _store(db)
    with store.read() as s:
        has_admin = s.scalar(select(Annotator.id).where(Annotator.role == "admin").limit(1))
    base = (public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            ).rstrip("/")
    if not has_admin:
        pid, token = _new_admin(store, "first admin")
        typer.echo(f"first start: admin {pid} created; sign in once with this link:\n"
                   f"  {base}/invite/{token}")
    shown = store.url.render_as_string(hide_password=True)
    typer.echo(f"rlxf annotate on {base}  (database: {shown})")
    if workers > 1:
        store.dispose()
        os.environ["RLXF_ANNOTATE_DB"] = store.url.render_as_string(hide_password=False)
        os.environ["RLXF_ANNOTATE_DATA"] = str(data_dir.resolve())
        os.environ["RLXF_ANNOTATE_SUBMIT_RATE"] = str(submit_rate)
        os.environ["RLXF_ANNOTATE_SUBMIT_BURST"] = str(submit_burst)
        os.environ["RLXF_ANNOTATE_PUBLIC_URL"] = base
        os.environ["RLXF_ANNOTATE_ADDRESS_LOGIN_BURST"] = str(login_burst_per_address)
        if secure_cookies is not None:
            os.environ["RLXF_ANNOTATE_SECURE_COOKIES"] = "1" if secure_cookies else "0"
        uvicorn.run("rlxf.server.app:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=access_log)
    else:
        app = create_app(store, data_dir=data_dir, migrate=False, serve=True,
                         submit_rate=submit_rate, submit_burst=submit_burst, public_url=base,
                         secure_cookies=secure_cookies,
                         signin=SignInGuard(address_burst=login_burst_per_address))
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=access_log)


@annotate_app.command("create-admin")
def create_admin(db: str = typer.Option("annotate.db", "--db", help=DB_HELP),
                 url: str = typer.Option("http://127.0.0.1:8000", help="where the app is served"),
                 note: str = typer.Option("", help="private note: who this admin is")) -> None:
    """Create another admin (e.g. after losing access) and print their one-time link."""
    pid, token = _new_admin(_store(db), note)
    typer.echo(f"admin {pid}: sign in once with {url.rstrip('/')}/invite/{token}")


@annotate_app.command()
def export(project: int = typer.Argument(..., help="project id (see the admin page)"),
           out: Path = typer.Option(..., "--out", help="canonical feedback JSONL to write"),
           db: str = typer.Option("annotate.db", "--db", help=DB_HELP)) -> None:
    """Write a project's judgements as canonical feedback JSONL (what the pipeline reads)."""
    from ..rundir import write_jsonl
    from ..store import Project
    from .export import export_records
    store = _store(db)
    with store.read() as s:
        p = s.get(Project, project)
        if p is None:
            typer.echo(f"error: no project {project} in {db}", err=True)
            raise typer.Exit(2)
        n = write_jsonl(out, [r.to_json() for r in export_records(s, p)])
    typer.echo(f"{n} judgements -> {out}")
