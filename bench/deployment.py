"""The whole service as `make run` starts it (scripts/run.sh), in a throwaway folder on loopback.

For the tests and benches that attack or measure the real deployment: migrations,
startup check, queue consumer, gunicorn and (where installed) nginx, on a free
127.0.0.1 port, with the instance, runs and data in `folder`. `stop()` sends
SIGTERM to run.sh (which stops its children) and, should that hang, kills the
whole process group.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.services import free_port

ROOT = Path(__file__).resolve().parent.parent


class Deployment:
    def __init__(self, folder: Path, model: Path, **settings: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "service.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
               "HARK_INSTANCE": str(self.folder / "instance"), "HARK_RUNS": str(self.folder / "runs"),
               "HARK_DATA": str(self.folder / "data"), "HARK_DEFAULT_MODEL": str(model),
               "HARK_AUTO_TRAIN": "0", "HARK_BIND": f"127.0.0.1:{self.port}", "HARK_LOG_LEVEL": "warning",
               **settings}
        env.pop("HARK_MODEL", None)
        with open(self.log, "w") as log:       # the child keeps its own copy of the file
            self.proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 120) -> dict:
        """/api/health's answer once it is 200; RuntimeError (with the log) if the service ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/api/health", timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start:\n{self.output()[-3000:]}") from None
                time.sleep(0.3)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
