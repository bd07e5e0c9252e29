"""Admin login, CSRF, rate limits, security headers and cookies, through Flask's test client.

The admin-route check lists routes from app.url_map, so a route added later
(by any blueprint) is covered without touching this file.
"""
from __future__ import annotations

import io
import os
import re
import stat

from werkzeug.routing import IntegerConverter

from tests.helpers import PASSWORD, audio_bytes, csrf_token, login, make_app
from webapp.auth.accounts import admin_count
from webapp.database import db
from webapp.tables import User

SAFE = {"HEAD", "OPTIONS"}


def _url(rule) -> str:
    """A concrete URL for a rule: every <converter:name> gets a harmless value."""
    values = {arg: 1 if isinstance(rule._converters[arg], IntegerConverter) else "x"
              for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def admin_rules(app):
    """Every route under /admin, and any other route whose view is marked admin-only."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/admin") or getattr(view, "admin_required", False):
            yield rule


def test_every_admin_route_refuses_anonymous_users(app):
    client = app.test_client()
    token = csrf_token(client)          # a valid token: what is refused is the missing login
    rules = list(admin_rules(app))
    assert len(rules) >= 10, [r.rule for r in rules]
    checked = 0
    for rule in rules:
        url = _url(rule)
        for method in sorted(rule.methods - SAFE):
            r = client.open(url, method=method, headers={"X-CSRFToken": token},
                            json={} if method != "GET" else None)
            if url.startswith(("/admin/api/", "/api/")):
                assert r.status_code == 401, (method, url, r.status_code)
                assert r.get_json() == {"error": "log in as an admin first"}
            else:
                assert r.status_code == 302, (method, url, r.status_code)
                assert r.headers["Location"].startswith("/login?next="), (method, url)
            checked += 1
    assert checked >= len(rules)


def test_public_pages_stay_public(app):
    client = app.test_client()
    for path in ("/", "/upload", "/training", "/login", "/api/health", "/api/training"):
        assert client.get(path).status_code == 200, path


def test_admin_routes_work_once_logged_in_and_logout_ends_it(app):
    client = app.test_client()
    token = login(client)
    assert client.get("/admin").status_code == 200
    assert client.get("/admin/api/jobs").get_json() == {"jobs": []}
    assert client.get("/admin/api/versions").status_code == 200
    page = client.get("/admin").get_data(as_text=True)
    assert 'action="/logout"' in page and "Start a training job" in page
    assert client.get("/logout").status_code == 405          # only a POST with a token logs out
    assert client.post("/logout", data={}).status_code == 400
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302
    assert client.get("/admin").status_code == 302
    assert client.get("/admin/api/jobs").status_code == 401


def test_wrong_passwords_and_unknown_users_are_refused(app):
    client = app.test_client()
    token = csrf_token(client, "/login")
    for user, password in (("admin", "wrong password!!"), ("nobody", PASSWORD), ("admin", "")):
        r = client.post("/login", data={"username": user, "password": password, "csrf_token": token})
        assert r.status_code in (400, 401)
        assert "wrong user name or password" in r.get_data(as_text=True).lower() or r.status_code == 400
    assert client.get("/admin").status_code == 302


def test_login_redirects_only_to_this_site(app):
    for target, expected in (("/training", "/training"), ("//evil.example/x", "/admin"),
                             ("https://evil.example/", "/admin"), ("/\\evil.example", "/admin")):
        client = app.test_client()
        token = csrf_token(client, "/login")
        r = client.post("/login?next=" + target,
                        data={"username": "admin", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 302 and r.headers["Location"] == expected, target


# ---- accounts -------------------------------------------------------------------------

def test_no_admin_and_no_default_password_without_setup(tmp_path):
    app = make_app(tmp_path, HARK_ADMIN_PASSWORD=None)
    with app.app_context():
        assert admin_count() == 0
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "create-admin" in page
    token = csrf_token(client, "/login")
    for password in ("admin", "password", "hark", ""):
        r = client.post("/login", data={"username": "admin", "password": password, "csrf_token": token})
        assert r.status_code in (400, 401)


def test_admin_from_environment_is_created_once_and_never_overwritten(tmp_path):
    app = make_app(tmp_path, HARK_ADMIN_USER="boss", HARK_ADMIN_PASSWORD="first password 1")
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.username == "boss" and user.password_hash.startswith("scrypt:")
        assert "first password" not in user.password_hash
    app = make_app(tmp_path, HARK_ADMIN_USER="boss", HARK_ADMIN_PASSWORD="second password 2")
    client = app.test_client()
    login(client, "boss", "first password 1")


def test_create_admin_command(tmp_path):
    app = make_app(tmp_path, HARK_ADMIN_PASSWORD=None)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "alice", "--password-stdin"], input="short\n")
    assert result.exit_code != 0 and "at least 10 characters" in result.output
    result = runner.invoke(args=["create-admin", "alice", "--password-stdin"],
                           input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    assert "created the admin 'alice'" in result.output
    result = runner.invoke(args=["create-admin", "alice"],
                           input="another long secret\nanother long secret\n")
    assert result.exit_code == 0 and "updated" in result.output
    client = app.test_client()
    login(client, "alice", "another long secret")


def test_secret_key_is_generated_once_and_private(tmp_path):
    app = make_app(tmp_path, SECRET_KEY=None)
    key_file = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert app.config["SECRET_KEY"] == key_file.read_text().strip() and len(app.secret_key) >= 32
    again = make_app(tmp_path, SECRET_KEY=None)
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    assert make_app(tmp_path, SECRET_KEY="from the environment").secret_key == "from the environment"


# ---- CSRF ---------------------------------------------------------------------------------

def test_state_changing_requests_need_the_csrf_token(app, tone_data):
    client = app.test_client()
    login(client)
    form = {"dataset": "folder", "folder": str(tone_data), "arch": "kws", "epochs": "1",
            "batch_size": "16", "learning_rate": "0.003", "augment": "arch", "split": "speaker"}
    for data in (form, {**form, "csrf_token": "forged"}):
        r = client.post("/admin/jobs", data=data)
        assert r.status_code == 400 and "security token" in r.get_data(as_text=True)
    r = client.post("/admin/api/jobs", json=form)
    assert r.status_code == 400 and "security token" in r.get_json()["error"]
    r = client.post("/admin/api/jobs", json=form, headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    assert client.post("/admin/api/versions/1/activate").status_code == 400
    assert client.delete("/admin/api/versions/1").status_code == 400
    assert client.get("/admin/api/jobs").get_json() == {"jobs": []}      # nothing was started
    # A token from another session does not work either.
    other_token = csrf_token(app.test_client())
    r = client.post("/admin/api/jobs", json=form, headers={"X-CSRFToken": other_token})
    assert r.status_code == 400
    # The login form itself is protected too (login CSRF).
    anonymous = app.test_client()
    r = anonymous.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 400


def test_predict_and_analyze_need_no_token(app):
    client = app.test_client()
    for url in ("/api/predict", "/api/analyze"):
        r = client.post(url, data={"file": (io.BytesIO(audio_bytes()), "clip.wav")},
                        content_type="multipart/form-data")
        assert r.status_code == 200, (url, r.get_json())


def test_pages_carry_the_token_for_scripts(app):
    html = app.test_client().get("/").get_data(as_text=True)
    assert re.search(r'<meta name="csrf-token" content="[^"]{20,}">', html)
    assert "/static/js/csrf.js?v=" in html


# ---- rate limits ------------------------------------------------------------------------

def test_login_is_rate_limited(tmp_path, tiny_run, limiter_clock):
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_RATE_LOGIN="3/minute")
    client = app.test_client()
    token = csrf_token(client, "/login")
    statuses = [client.post("/login", data={"username": "admin", "password": f"guess {i}",
                                            "csrf_token": token}).status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    r = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429          # even the right password waits: brute force gets nothing
    assert "too many requests" in r.get_data(as_text=True).lower()
    assert client.get("/login").status_code == 200          # only attempts are counted
    api = client.post("/login", json={"username": "admin"}, headers={"Accept": "application/json"})
    assert api.status_code in (400, 429)


def test_predict_is_rate_limited_with_a_json_429(tmp_path, tiny_run, limiter_clock):
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_RATE_PREDICT="2/minute")
    client = app.test_client()
    answers = [client.post("/api/predict", data=audio_bytes(), content_type="audio/wav")
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    body = answers[2].get_json()
    assert body["error"].startswith("too many requests") and answers[2].mimetype == "application/json"
    assert "Retry-After" in answers[2].headers
    assert client.get("/api/health").status_code == 200    # other endpoints are not limited


def test_an_early_refusal_reads_the_upload_before_answering(tmp_path, tiny_run, limiter_clock):
    """A 429 (or 503...) answered with the body unread made gunicorn close the socket on it, and
    nginx, still sending the body, answered 502: the body is read and dropped first, up to the
    route's own limit (/api/detect takes 64 MB), never past it (413)."""
    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(tiny_run), HARK_RATE_PREDICT="1/minute",
                   HARK_RATE_AUDIO_SECONDS="1/minute")
    client = app.test_client()

    def send(url, size, **kw):
        body = io.BytesIO(audio_bytes() + bytes(size))
        r = client.post(url, input_stream=body, content_length=len(body.getvalue()),
                        content_type="audio/wav", **kw)
        return r, body.tell(), len(body.getvalue())

    assert send("/api/predict", 0)[0].status_code == 200              # spends both budgets
    for url, size in (("/api/predict", 2_700_000), ("/api/analyze", 2_700_000),
                      ("/api/detect", 20 * 1024 * 1024)):
        r, read, length = send(url, size)
        assert r.status_code == 429 and r.get_json()["error"].startswith(("too many", "too much")), url
        assert read == length, (url, read, length)
    r, read, _ = send("/api/predict", 11 * 1024 * 1024, environ_base={"REMOTE_ADDR": "127.0.0.7"})
    assert r.status_code == 413 and read == 0


# ---- headers and cookies --------------------------------------------------------------------

def test_security_headers_on_pages_and_api(app):
    client = app.test_client()
    for path in ("/", "/api/health", "/login", "/nowhere"):
        h = client.get(path).headers
        csp = h["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]+)", csp).group(1)
        assert script_src.strip() == "'self' 'wasm-unsafe-eval'"    # WebAssembly only (LiteRT.js)
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "same-origin"
        assert "microphone=(self)" in h["Permissions-Policy"]
        assert "Strict-Transport-Security" not in h


def session_cookie(response) -> str:
    return next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))


def test_session_cookie_flags_and_secure_over_https(app):
    client = app.test_client()
    cookie = session_cookie(client.get("/login"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client()
    r = secure.get("/login", base_url="https://hark.example")
    assert "Secure" in session_cookie(r)
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")


def test_forwarded_https_is_trusted_only_when_configured(tmp_path, tiny_run):
    headers = {"X-Forwarded-Proto": "https"}
    plain = make_app(tmp_path / "a", HARK_DEFAULT_MODEL=str(tiny_run)).test_client()
    assert "Secure" not in session_cookie(plain.get("/login", headers=headers))
    proxied = make_app(tmp_path / "b", HARK_DEFAULT_MODEL=str(tiny_run), HARK_PROXIES=1).test_client()
    assert "Secure" in session_cookie(proxied.get("/login", headers=headers))
