"""Run many ``tokenshift`` command lines, each in its own process under a memory and a time limit.

Started once per test module (``python tests/forkrun.py < cases.json > results.json``), it imports the
CLI and its heavy dependencies (torch, transformers, tokenizers) a single time, then forks one child per
case: the child sets its limits, moves into the case's folder and environment, runs
:func:`tokenshift.cli.main` as the ``tokenshift`` script would, and exits with its code. Forking from a
warm process makes a case cost a fraction of a second instead of the seconds an import of torch takes,
so a table of fifty hostile inputs fits the default suite.

Each case (a JSON object): ``argv``, ``cwd``, ``env`` (added to this process's), ``stdout``/``stderr``
(files to write), ``seconds`` (killed after), ``memory_bytes`` (address space allowed beyond what the
warm parent already maps). Each result: ``code`` (the exit code; ``-9`` when killed), ``timed_out``,
``peak_rss_bytes`` (the child's own, from ``wait4``).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

PARALLEL = 2


def _mapped_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(case: dict) -> None:
    """In the forked child: limits, folder, environment, output files, then the CLI. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as a fresh interpreter answers it
        allowed = _mapped_bytes() + int(case["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (allowed, allowed))
        os.chdir(case["cwd"])
        os.environ.update(case.get("env", {}))
        for key in case.get("unset", []):
            os.environ.pop(key, None)
        for fd, name in ((1, case["stdout"]), (2, case["stderr"])):
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        from tokenshift.cli import main

        try:
            code = main(case["argv"])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # what escaped main: the test sees the traceback in stderr
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_all(cases: list[dict], parallel: int = PARALLEL) -> list[dict]:
    results: list[dict | None] = [None] * len(cases)
    running: dict[int, tuple[int, float]] = {}  # pid -> (case index, deadline)
    waiting = list(range(len(cases)))
    while waiting or running:
        while waiting and len(running) < parallel:
            index = waiting.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(cases[index])
            running[pid] = (index, time.monotonic() + float(cases[index]["seconds"]))
        for pid, (index, deadline) in list(running.items()):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            timed_out = False
            if done == 0:
                if time.monotonic() < deadline:
                    continue
                os.kill(pid, signal.SIGKILL)
                done, status, usage = os.wait4(pid, 0)
                timed_out = True
            del running[pid]
            code = os.waitstatus_to_exitcode(status)
            results[index] = {"code": code, "timed_out": timed_out, "peak_rss_bytes": usage.ru_maxrss * 1024}
        time.sleep(0.02)
    return [result for result in results if result is not None]


if __name__ == "__main__":
    # Warm the imports the children share (the CLI imports most of them lazily, per command).
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM  # noqa: F401

    import tokenshift.cli  # noqa: F401
    import tokenshift.evaluate  # noqa: F401
    import tokenshift.export  # noqa: F401
    import tokenshift.heal  # noqa: F401
    import tokenshift.transplant  # noqa: F401

    json.dump(run_all(json.load(sys.stdin)), sys.stdout)
