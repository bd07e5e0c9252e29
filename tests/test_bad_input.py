"""Hostile input gets a 4xx with a message, never a 500.

Each attack of the review is reproduced as it was made; then every route of the
app is walked with hostile ids, query strings and bodies, logged in as an admin
with a valid CSRF token (so the checks behind the login are reached), and no
answer may be a 5xx. The walking app's queue is not immediate: a job a hostile
request manages to queue is stored, never run.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select
from werkzeug.routing import IntegerConverter

from tests.helpers import PASSWORD, audio_bytes, csrf_token, login
from webapp.database import db
from webapp.tables import TrainingJob

HUGE = 2**63                 # one past SQLite's largest integer
LONG_NAME = "n" * 256        # one byte past NAME_MAX
NON_OBJECTS = ['"x"', "5", "[1]", "null", "true"]     # JSON texts that are no object
JSON = "application/json"


@pytest.fixture
def app(app_factory):
    """Jobs a request queues are stored, never run (no training starts in these tests)."""
    return app_factory(HARK_QUEUE_IMMEDIATE=False)


def job_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(db.func.count()).select_from(TrainingJob))


def error_of(response) -> str:
    return response.get_json()["error"]


# ---- ids beyond what the database holds -----------------------------------------------------

def test_huge_job_id_on_the_public_api_is_a_json_404(client):
    for job_id in (HUGE, 2**31, 10**40):
        r = client.get(f"/api/training/jobs/{job_id}")
        assert r.status_code == 404 and r.is_json, (job_id, r.status_code)
    r = client.get(f"/api/training/jobs/{2**31 - 1}")       # in range, just absent
    assert r.status_code == 404 and "no training job" in error_of(r)


def test_every_admin_id_route_answers_404_for_huge_ids(app, admin):
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")
             and any(isinstance(c, IntegerConverter) for c in rule._converters.values())]
    assert len(rules) >= 7, [r.rule for r in rules]
    for rule in rules:
        for job_id in (HUGE, 2**31):
            url = rule.rule.replace(f"<int:{next(iter(rule.arguments))}>", str(job_id))
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                r = admin.open(url, method=method, headers=admin.headers)
                assert r.status_code == 404, (method, url, r.status_code)
                assert r.is_json == url.startswith("/admin/api/"), (method, url)


# ---- the login form ------------------------------------------------------------------------

def test_login_with_a_json_body_that_is_not_an_object_is_a_400(app):
    client = app.test_client()
    token = csrf_token(client, "/login")
    for text in NON_OBJECTS:
        r = client.post("/login", data=text, content_type=JSON, headers={"X-CSRFToken": token})
        assert r.status_code == 400, (text, r.status_code)
        assert "json body must be an object" in r.get_data(as_text=True).lower(), text
    for body in [{"username": ["admin"], "password": PASSWORD}, {"username": {"a": 1}, "password": "x"}]:
        r = client.post("/login", json=body, headers={"X-CSRFToken": token})
        assert r.status_code == 400 and "single value" in r.get_data(as_text=True), body
    r = client.post("/login", json={"username": 5, "password": 5}, headers={"X-CSRFToken": token})
    assert r.status_code == 401               # a number is just a wrong user name
    r = client.post("/login", json={"username": "admin", "password": PASSWORD},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 302               # a JSON object of strings logs in


def test_login_next_with_control_characters_goes_to_the_admin_page(app):
    for target in ("/%0d%0aX:1", "/%0aSet-Cookie:a=b", "/admin%00", "/%09/evil.example"):
        client = app.test_client()
        token = csrf_token(client, "/login")
        r = client.post(f"/login?next={target}", data={"username": "admin", "password": PASSWORD,
                                                        "csrf_token": token})
        assert r.status_code == 302, (target, r.status_code)
        assert r.headers["Location"] == "/admin", target
        assert "X" not in r.headers and "a=b" not in r.headers.get("Set-Cookie", ""), target
    client = app.test_client()              # an ordinary next still works
    token = csrf_token(client, "/login")
    r = client.post("/login?next=/gallery%3Fsource%3Dx", data={
        "username": "admin", "password": PASSWORD, "csrf_token": token})
    assert r.headers["Location"] == "/gallery?source=x"


# ---- the admin's job API -------------------------------------------------------------------

def test_job_api_refuses_non_objects_and_non_numbers(app, admin, tone_data):
    base = {"dataset": "folder", "folder": str(tone_data)}
    for text in NON_OBJECTS:
        r = admin.post("/admin/api/jobs", data=text, content_type=JSON, headers=admin.headers)
        assert r.status_code == 400 and "object" in error_of(r), text
    cases = [
        ({"learning_rate": "sNaN"}, "learning_rate", "the learning rate must be a number"),
        ({"learning_rate": "0.001"}, "learning_rate", "must be a number"),
        ({"learning_rate": float("nan")}, "learning_rate", "must be a number"),
        ({"learning_rate": float("inf")}, "learning_rate", "must be a number"),
        ({"epochs": 2.5}, "epochs", "epochs must be a whole number"),
        ({"epochs": True}, "epochs", "epochs must be a whole number"),
        ({"epochs": "3"}, "epochs", "epochs must be a whole number"),
        ({"epochs": 0}, "epochs", "epochs must be between 1 and 500"),
        ({"batch_size": 10**400}, "batch_size", "between"),
        ({"arch": 5}, "arch", "one of"),
        ({"augment": "maybe"}, "augment", "true, false or null"),
        ({"activate": "yes"}, "activate", "true or false"),
        ({"activate": 1}, "activate", "true or false"),
        ({"epochs": [1]}, None, "single value"),
        ({"folder": {"a": 1}}, None, "single value"),
    ]
    for change, field, message in cases:
        r = admin.post("/admin/api/jobs", json={**base, **change}, headers=admin.headers)
        assert r.status_code == 400, (change, r.status_code)
        body = r.get_json()
        if field:
            assert message in " ".join(body["fields"][field]), (change, body)
        else:
            assert message in body["error"], (change, body)
    assert job_count(app) == 0
    # What is right in JSON still works, with JSON's own types (a whole float is a whole number).
    good = {**base, "epochs": 3.0, "learning_rate": 0.001, "augment": False, "activate": True}
    r = admin.post("/admin/api/jobs", json=good, headers=admin.headers)
    assert r.status_code == 202, r.get_json()
    params = r.get_json()["params"]
    assert params["epochs"] == 3 and isinstance(params["epochs"], int)
    assert params["learning_rate"] == 0.001 and params["augment"] is False and params["activate"] is True


def test_job_form_refuses_nan_and_infinite_learning_rates(app, admin, tone_data):
    for value in ("sNaN", "NaN", "nan", "Infinity", "-inf", "1e999"):
        form = {"csrf_token": admin.token, "dataset": "folder", "folder": str(tone_data),
                "arch": "kws", "epochs": "1", "learning_rate": value, "augment": "arch",
                "split": "speaker"}
        r = admin.post("/admin/jobs", data=form)
        assert r.status_code == 400, (value, r.status_code)
        html = r.get_data(as_text=True)
        assert "The job was not started" in html and ("must be a number" in html
                                                      or "Not a valid float" in html), value
    assert job_count(app) == 0


def test_regenerate_api_refuses_non_objects(app, admin):
    for text in NON_OBJECTS:
        r = admin.post("/admin/api/regenerate", data=text, content_type=JSON, headers=admin.headers)
        assert r.status_code == 400 and "JSON object" in error_of(r), text
    r = admin.post("/admin/api/regenerate", json={"activate": "no"}, headers=admin.headers)
    assert r.status_code == 400 and "true or false" in error_of(r)
    r = admin.post("/admin/api/regenerate", data="{", content_type=JSON, headers=admin.headers)
    assert r.status_code == 400
    assert job_count(app) == 0


# ---- deeply nested JSON ---------------------------------------------------------------------

DEEP = ["[" * 30_000 + "]" * 30_000, '{"a": ' * 8_000 + "1" + "}" * 8_000,
        '{"activate": ' + "[" * 40 + "]" * 40 + "}"]        # parses, but deeper than any use


@pytest.mark.parametrize("text", DEEP, ids=["lists", "objects", "parses"])
def test_deeply_nested_json_is_a_400_everywhere(app, admin, text):
    for url in ("/admin/api/jobs", "/admin/api/evaluations", "/admin/api/datasets", "/admin/api/regenerate"):
        r = admin.post(url, data=text, content_type=JSON, headers=admin.headers)
        assert r.status_code == 400 and "nested too deeply" in error_of(r), (url, r.status_code)
    client = app.test_client()
    r = client.post("/login", data=text, content_type=JSON, headers={"X-CSRFToken": csrf_token(client, "/login")})
    assert r.status_code == 400 and "nested too deeply" in r.get_data(as_text=True), r.status_code
    clip = io.BytesIO(audio_bytes())
    r = client.post("/api/detect", data={"stream": text, "file": (clip, "chunk.wav")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "bad stream state: nested too deeply" in error_of(r), r.status_code
    assert job_count(app) == 0


# ---- folder paths --------------------------------------------------------------------------

def bad_folders(tone_data: Path) -> list[tuple[str, str]]:
    return [(f"{tone_data}\x00/x", "control character"),
            (f"/tmp/{LONG_NAME}", "longer than 255 bytes"),
            (f"{tone_data}/{'é' * 128}", "longer than 255 bytes"),     # 256 bytes in UTF-8
            ("/" + "a/" * 2100, "longer than 4095 bytes"),
            ("/tmp/a\nb", "control character"),
            ("/tmp/\ud800", "control character"),
            ("~no-such-user-here/data", "no such user")]


def test_job_folders_with_nul_or_long_names_are_refused(app, admin, tone_data):
    for folder, message in bad_folders(tone_data):
        r = admin.post("/admin/api/jobs", json={"dataset": "folder", "folder": folder},
                       headers=admin.headers)
        assert r.status_code == 400, (folder[:40], r.status_code)
        assert message in " ".join(r.get_json()["fields"]["folder"]), (folder[:40], r.get_json())
        form = {"csrf_token": admin.token, "dataset": "folder", "folder": folder.replace("\ud800", "?"),
                "arch": "kws", "epochs": "1", "augment": "arch", "split": "speaker"}
        r = admin.post("/admin/jobs", data=form)
        assert r.status_code == 400, (folder[:40], r.status_code)
    assert job_count(app) == 0


def test_evaluation_folders_with_nul_or_long_names_are_refused(app, admin, tone_data):
    for folder, message in bad_folders(tone_data):
        r = admin.post("/admin/api/evaluations", json={"folder": folder}, headers=admin.headers)
        assert r.status_code == 400 and message in error_of(r), (folder[:40], r.status_code)
    for text in NON_OBJECTS:
        r = admin.post("/admin/api/evaluations", data=text, content_type=JSON, headers=admin.headers)
        assert r.status_code == 400 and "JSON object" in error_of(r), text
    for body in [{"folder": 5}, {"folder": str(tone_data), "model": ["run:x"]}]:
        r = admin.post("/admin/api/evaluations", json=body, headers=admin.headers)
        assert r.status_code == 400 and "must be a string" in error_of(r), body
    assert job_count(app) == 0


# ---- every route, hostile --------------------------------------------------------------------

INT_VALUES = [0, 2**31 - 1, 2**31, HUGE, 10**30]
STRING_VALUES = ["x", "..", "\x00", "run:" + "a" * 300, "eval:../../etc/passwd", "%", "\u202e"]
QUERY = ("?page=-1&per_page=99999999999999999999999&min=nan&max=inf&sort=%00&true=%00&pred=%E2%80%AE"
         f"&errors=2&limit={HUGE}&a=run:x&b=..&which=%0d%0a&latency=0&next=//evil.example&source=%00")


def hostile_bodies() -> list[dict]:
    """Keyword arguments of client.open for each hostile body (made afresh: files are streams)."""
    return [*({"data": text, "content_type": JSON} for text in NON_OBJECTS), {"json": {}},
            {"json": {"folder": "/tmp/\x00", "model": "run:\x00", "activate": "yes"}},
            {"json": {"learning_rate": "sNaN", "epochs": 2.5, "batch_size": True, "dataset": 5}},
            {"json": {"batch_size": 10**400, "patience": -1e308, "folder": "~nobody-here/x"}},
            {"json": {"folder": {"a": [1]}, "username": ["a"], "password": 5}},
            {"data": "{", "content_type": JSON},
            {"data": b"\x00\xff" * 100, "content_type": "application/octet-stream"},
            {"data": {"folder": LONG_NAME * 20, "epochs": "1e999", "learning_rate": "NaN",
                      "dataset": "folder", "username": "\x00", "password": "x" * 5000}},
            {"data": {"file": (io.BytesIO(b"RIFF\xff\xff\xff\xffWAVEfmt "), "a\x00.wav")},
             "content_type": "multipart/form-data"}]


def hostile_urls(rule) -> list[str]:
    """The rule's path with every combination of hostile values (ids and strings)."""
    urls = [rule.rule]
    for arg, converter in rule._converters.items():
        values = INT_VALUES if isinstance(converter, IntegerConverter) else STRING_VALUES
        pattern = re.compile(rf"<(?:[^>:]+:)?{arg}>")
        urls = [pattern.sub(quote(str(v), safe=":"), u) for u in urls for v in values]
    return urls


def test_every_route_survives_hostile_ids_queries_and_bodies(app):
    client = app.test_client()
    token = login(client)
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.rule == "/logout", r.rule))
    assert len(rules) >= 40, len(rules)
    answers, failures = 0, []
    for rule in rules:
        if rule.endpoint == "static":
            continue
        for url in hostile_urls(rule):
            for method in sorted(rule.methods - {"OPTIONS"}):
                reading = method in ("GET", "HEAD")
                for extra in [{}] if reading else hostile_bodies():
                    target = url + (QUERY if reading else "")
                    r = client.open(target, method=method, headers={"X-CSRFToken": token}, **extra)
                    answers += 1
                    if r.status_code >= 500:
                        failures.append((method, target[:120], str(extra)[:80], r.status_code))
                    if rule.rule == "/logout" and method == "POST":
                        token = login(client)     # logging out is what it should do: log in again
    assert not failures, failures[:20]
    assert answers > 800, answers
    with app.app_context():                 # nothing hostile became a job
        params = [job.params for job in db.session.scalars(select(TrainingJob))]
    for p in params:
        assert "\x00" not in str(p) and p.get("kind") != "evaluate", p
