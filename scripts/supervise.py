"""Keep Hark's processes running: scripts/run.sh execs this with the queue consumer, gunicorn's
master and nginx, and it restarts whichever of them ends, so one crash never takes the site down.

Why a small supervisor of our own: `wait -n` in bash saw the first exit and could only stop
everything; systemd or supervisord are not on every machine `make run` serves from, and both
would need a unit per program plus the crash hook below. This is one process, standard library
only, that each program is a direct child of:

- each program runs in a process group of its own; when its leader ends, what is left of the
  group (nginx's workers, gunicorn's workers, a consumer's children) gets SIGTERM, so the
  restarted program can bind the same address;
- a crashed queue consumer's running job is marked failed at once, with the reason (the restart
  would only find it later), by `python -m webapp.training.worker --fail-jobs-of PID`;
- the first restart is at once (the site is down while nginx or gunicorn is), the next ones
  after 1 s, 2 s, 4 s... up to 60 s while the program keeps crashing within a minute of its
  start, at once again after it has run for a minute; every exit and restart is logged;
- a program whose very first run exits with an error within STARTUP_S never started (a bad
  setting, the port taken): everything is stopped and its status returned, as before, instead
  of retrying forever (killed by a signal, it is restarted like any crash);
- SIGINT, SIGTERM or SIGHUP stop them all gracefully (consumer SIGINT: a training ends after
  its batch; gunicorn SIGTERM; nginx SIGQUIT: answers in flight are finished), then 130 or 143.

Run (scripts/run.sh does): supervise.py [--remove DIR] NAME:STOPSIGNAL command... [::: NAME:STOPSIGNAL command...]
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STARTUP_S = 10.0         # a first run shorter than this is a failure to start, not a crash
STABLE_S = 60.0          # a run this long resets the restart delay
MAX_DELAY_S = 60.0
STOP_WAIT_S = 60.0       # a graceful stop longer than this is cut short with SIGKILL
ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} hark supervise: {message}", file=sys.stderr, flush=True)


def how_it_ended(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


class Program:
    def __init__(self, name: str, stop_signal: str, command: list[str]):
        self.name, self.command = name, command
        self.stop_signal = getattr(signal, f"SIG{stop_signal}")
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.runs = 0
        self.quick_crashes = 0       # runs in a row shorter than STABLE_S
        self.restart_at = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, start_new_session=True)
        self.started, self.runs = time.monotonic(), self.runs + 1
        if self.runs > 1:
            say(f"{self.name} restarted (pid {self.proc.pid})")

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def fail_jobs_of(pid: int, how: str) -> None:
    """The crashed consumer's running job becomes failed now, saying why (the restarted
    consumer's startup check would say less, and only after the restart delay)."""
    reason = (f"the queue consumer {how} while this job ran; it was restarted, "
              "so this job can be started again")
    done = subprocess.run([sys.executable, "-m", "webapp.training.worker", "--fail-jobs-of", str(pid),
                           "--reason", reason], cwd=ROOT, timeout=120)
    if done.returncode:
        say(f"could not mark the jobs of consumer pid {pid} failed (status {done.returncode}); "
            "the restarted consumer's startup check will")


def parse(argv: list[str]) -> tuple[list[Program], str | None]:
    remove = None
    if argv[:1] == ["--remove"]:
        remove, argv = argv[1], argv[2:]
    programs, group = [], []
    for word in argv + [":::"]:
        if word != ":::":
            group.append(word)
            continue
        if group:
            name, _, stop = group[0].partition(":")
            programs.append(Program(name, stop or "TERM", group[1:]))
        group = []
    if not programs or any(not p.command for p in programs):
        raise SystemExit(__doc__.rsplit("Run (", 1)[1])
    return programs, remove


def main(argv: list[str]) -> int:
    programs, remove = parse(argv)
    stopping: list[int] = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    for program in programs:
        program.start()
    say("running " + ", ".join(f"{p.name} pid {p.proc.pid}" for p in programs) + f" on {socket.gethostname()}")
    status = 0
    while not stopping:
        now = time.monotonic()
        for program in programs:
            if program.proc is not None and program.proc.poll() is not None:
                code, ran = program.proc.returncode, now - program.started
                program.signal_group(signal.SIGTERM)        # its orphaned workers or children
                if program.runs == 1 and code > 0 and ran < STARTUP_S:
                    say(f"{program.name} {how_it_ended(code)} {ran:.1f} s after its start: "
                        "it did not start, so everything stops")
                    stopping.append(0)
                    status = code
                    break
                program.quick_crashes = 0 if ran >= STABLE_S else program.quick_crashes + 1
                delay = min(2.0 ** (program.quick_crashes - 2), MAX_DELAY_S) if program.quick_crashes > 1 else 0.0
                program.restart_at = now + delay
                say(f"{program.name} (pid {program.proc.pid}) {how_it_ended(code)} after {ran:.1f} s; "
                    + (f"restarting it in {delay:.0f} s" if delay else "restarting it"))
                if program.name == "consumer":
                    fail_jobs_of(program.proc.pid, how_it_ended(code))
                program.proc = None
            elif program.proc is None and now >= program.restart_at and not stopping:
                program.start()
        time.sleep(0.1)

    for program in programs:
        if program.proc is not None and program.proc.poll() is None:
            program.proc.send_signal(program.stop_signal)
    deadline = time.monotonic() + STOP_WAIT_S
    for program in programs:
        if program.proc is None:
            continue
        try:
            program.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{program.name} did not stop within {STOP_WAIT_S:.0f} s: killing it")
            program.signal_group(signal.SIGKILL)
            program.proc.wait()
        program.signal_group(signal.SIGTERM)
    if remove:
        shutil.rmtree(remove, ignore_errors=True)
    if stopping[0] == signal.SIGINT:
        return 130
    if stopping[0] in (signal.SIGTERM, signal.SIGHUP):
        return 143
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
