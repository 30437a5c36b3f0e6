"""A process that imports the rlxf CLI and everything its commands load (torch, transformers,
the stages, the audit) once, then forks one child per command it is sent; each child runs
`python -m rlxf.cli ARGS` as a fresh process would, with its own stdout, stderr and exit code.

Why: importing the CLI's dependencies costs ~5 s of CPU, and the end-to-end tests run the CLI
dozens of times. The zygote itself never runs a torch operation, so every child starts with
torch's thread pools unstarted, as after a fresh import.

Protocol (tests/tiny_runs.py speaks it): one JSON line per command on stdin,
{"args": [...], "stdout": PATH, "stderr": PATH, "cwd": DIR or null, "timeout_s": N}; one line
back on stdout, {"rc": EXIT_CODE, "cpu_s": the child's user + system CPU seconds}, preceded
by {"pid": PID} when the request has "pid": true (tiny_runs.rlxf_started kills it). It exits
when its stdin closes; whoever started it waits for it, so the children's CPU time is counted
in the starter's (what `time` reports for a test run).
"""

import json
import os
import runpy
import signal
import sys

import rlxf.audit.report  # noqa: F401  (imported for the children)
import rlxf.cli  # noqa: F401
import rlxf.pipeline  # noqa: F401
import rlxf.sweep  # noqa: F401
# The stages, which rlxf.pipeline imports only when one runs (an up-to-date run needs no torch).
import rlxf.model_world.eval  # noqa: F401,E402
import rlxf.model_world.feedback  # noqa: F401,E402
import rlxf.model_world.policy  # noqa: F401,E402
import rlxf.model_world.reward  # noqa: F401,E402
import rlxf.model_world.world  # noqa: F401,E402
import rlxf.stages.evaluate  # noqa: F401,E402
import rlxf.stages.feedback  # noqa: F401,E402
import rlxf.stages.finetune  # noqa: F401,E402
import rlxf.stages.policy  # noqa: F401,E402
import rlxf.stages.pretrain  # noqa: F401,E402
import rlxf.stages.process  # noqa: F401,E402
import rlxf.stages.reward  # noqa: F401,E402
import rlxf.stages.sft  # noqa: F401,E402
import rlxf.stages.world  # noqa: F401,E402

# What rlxf imports only inside the functions that need them (so `rlxf --help` stays fast),
# but nearly every `rlxf run` child would import again (~8 s of CPU each): the feedback
# stage's crowd-kit and pandas, the models' modeling code, TensorBoard, the report's plots.
# None starts a thread or runs a torch operation on import.
import crowdkit.aggregation  # noqa: F401,E402
import matplotlib.backends.backend_svg  # noqa: F401,E402
import matplotlib.figure  # noqa: F401,E402
import torch.utils.tensorboard  # noqa: F401,E402
import transformers.models.gpt2.modeling_gpt2  # noqa: F401,E402
import transformers.models.llama.modeling_llama  # noqa: F401,E402


def child(args: list[str], stdout: str, stderr: str, cwd: str | None, timeout_s: int) -> int:
    signal.alarm(timeout_s)  # a command that hangs dies of SIGALRM (exit code -14)
    if cwd:
        os.chdir(cwd)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["rlxf", *args]
    code = 0
    try:
        runpy.run_module("rlxf.cli", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    return code


def exit_now(code: int) -> None:
    """Exit as the interpreter does (wait for non-daemon threads, run atexit handlers, flush the
    streams) but skip tearing down every imported module, which takes ~1.5 s of CPU with torch
    and transformers loaded and writes nothing."""
    import atexit
    import threading
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    reply = os.fdopen(os.dup(1), "w")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            # The child must not hold the protocol's pipes: reading stdin would eat the next
            # requests, and a held reply pipe hides the zygote's death from the test (no EOF).
            reply.close()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            exit_now(child(request["args"], request["stdout"], request["stderr"],
                           request["cwd"], request["timeout_s"]))
        if request.get("pid"):  # the test may kill the child: it needs its pid first
            reply.write(json.dumps({"pid": pid}) + "\n")
            reply.flush()
        _, status, usage = os.wait4(pid, 0)
        reply.write(json.dumps({"rc": os.waitstatus_to_exitcode(status),
                                "cpu_s": usage.ru_utime + usage.ru_stime}) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
