"""Helpers for tests of the admin side: an app with its own instance folder, a logged-in client."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from webapp import create_app

PASSWORD = "correct horse battery staple"


def make_app(tmp: Path, **config):
    """An app whose database, queue, runs and data live under `tmp` (tasks run inline)."""
    base = {"HARK_INSTANCE": str(tmp / "instance"), "HARK_RUNS": str(tmp / "runs"),
            "HARK_DATA": str(tmp / "data"), "HARK_QUEUE_IMMEDIATE": True,
            "HARK_ADMIN_PASSWORD": PASSWORD, "HARK_MODEL_CHECK_S": 0, "TESTING": True}
    return create_app({**base, **config})


def csrf_token(client, path: str = "/") -> str:
    """The session's CSRF token, read the way the scripts read it (the meta tag)."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, username: str = "admin", password: str = PASSWORD):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return token


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of a run that is a version of its own (its run id is its folder name)."""
    shutil.copytree(run_dir, dest)
    config = json.loads((dest / "config.json").read_text())
    config["run_id"] = dest.name
    (dest / "config.json").write_text(json.dumps(config))
    return dest
