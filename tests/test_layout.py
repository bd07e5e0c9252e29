"""The shape of the code: which way imports go, and what a web worker loads.

Imports are read from the source (every `import`, at module level or inside a
function), so a cycle hidden in a function body counts too.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("ml", "webapp")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from package import name` of a submodule
    counts as that submodule)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files
                           else node.module for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


FACTORY = "webapp"     # webapp/__init__.py: create_app wires every package together


def package_of(module: str) -> str:
    """The package a module belongs to for the one-way rule: ml, a sub-package of webapp
    (webapp.training), a module at the top of webapp (webapp.security), or the factory."""
    parts = module.split(".")
    return parts[0] if parts[0] != "webapp" else ".".join(parts[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """package -> the packages its modules import. The factory (webapp/__init__.py) is left
    out: it imports every package to wire them together, and only the queue consumer's entry
    point (`python -m webapp.training.worker`) imports it back, to build the app it runs in
    (test_only_entry_points_import_the_factory)."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == FACTORY:
            continue
        edges = packages.setdefault(package_of(module), set())
        edges |= {package_of(t) for t in targets if t != FACTORY} - {package_of(module)}
    return packages


def test_no_import_cycles():
    graph = import_graph()
    assert "webapp.training.jobs" in graph and graph["webapp.training.runner"]
    assert cycles(graph) == []


def test_packages_import_one_way():
    """No two packages import each other, directly or round a longer loop."""
    packages = package_graph(import_graph())
    assert {"ml", "webapp.training", "webapp.gallery", "webapp.versions", "webapp.classify",
            "webapp.security"} <= set(packages)
    assert "webapp.versions" in packages["webapp.training"]
    assert cycles(packages) == []


def test_the_package_check_finds_a_package_cycle():
    """Modules with no cycle among them can still tie their packages in a knot: training's
    runner reading the gallery while the gallery's models read training's versions."""
    modules = {"webapp.training.runner": {"webapp.gallery.evaluations"},
               "webapp.gallery.evaluations": set(),
               "webapp.gallery.models": {"webapp.training.versions"},
               "webapp.training.versions": {"ml.runs"}, "ml.runs": set(),
               "webapp": {"webapp.training.runner"}, "webapp.training.worker": {"webapp"}}
    assert cycles(modules) == []
    assert cycles(package_graph(modules)) == [["webapp.gallery", "webapp.training"]]
    modules["webapp.gallery.models"] = {"ml.runs"}
    assert cycles(package_graph(modules)) == []


def test_only_entry_points_import_the_factory():
    importers = sorted(m for m, targets in import_graph().items() if FACTORY in targets)
    assert importers == ["webapp.training.worker"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_top_of_webapp_is_infrastructure():
    """Features live in packages; the top of webapp/ holds what every one of them uses."""
    top = sorted(p.stem for p in (ROOT / "webapp").glob("*.py") if p.stem != "__init__")
    assert not {"api", "pages", "views", "inference", "detection"} & set(top), top
    assert len(top) <= 12, top       # more belongs in a package (auth, security, frontend...)


def test_route_modules_have_one_name_in_every_package():
    """views.py serves a package's pages, api.py its JSON routes: no other module has routes
    but the admin's folder evaluation, the versions' downloads and the frontend's vendored
    scripts (one blueprint each)."""
    routed = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "webapp").rglob("*.py")
                    if "Blueprint(" in p.read_text())
    others = [p for p in routed if Path(p).name not in ("views.py", "api.py")]
    assert others == ["webapp/admin/evaluations.py", "webapp/frontend/assets.py",
                      "webapp/versions/downloads.py"], others


def test_ml_never_imports_the_web_side():
    offenders = {m: sorted(e) for m, e in import_graph().items()
                 if m.startswith("ml") and any(t.startswith("webapp") for t in e)}
    assert offenders == {}


def test_no_private_names_are_used_across_modules():
    """webapp modules use each other's public names only (`from m import _x` or `m._x`)."""
    used = []
    for path in (ROOT / "webapp").rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = set()          # local names bound to project modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGES):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        used.append(f"{path.name}: from {node.module} import {alias.name}")
                    modules.add(alias.asname or alias.name)
        used += [f"{path.name}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
                 if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                 and node.value.id in modules and node.attr.startswith("_")
                 and not node.attr.startswith("__")]
    assert used == []


def _passes_in_a_fresh_process(script: str, timeout: float) -> None:
    """Run `script` in a new interpreter (nothing imported yet); it exits 0 when its checks hold."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_building_the_app_and_rendering_every_page_loads_no_tensorflow(tmp_path, tiny_run):
    """Web workers stay small: only the queue consumer may import TensorFlow."""
    script = f"""
import sys
from webapp import create_app
app = create_app({{"HARK_INSTANCE": {str(tmp_path / 'instance')!r}, "HARK_RUNS": {str(tmp_path / 'runs')!r},
                  "HARK_DEFAULT_MODEL": {str(tiny_run)!r}, "HARK_ADMIN_PASSWORD": "a long password 1",
                  "WTF_CSRF_ENABLED": False}})
client = app.test_client()
pages = ["/", "/upload", "/training", "/gallery", "/gallery/compare", "/login", "/api/health",
         "/api/training", "/api/gallery/sources"]
assert all(client.get(p).status_code == 200 for p in pages), [client.get(p).status_code for p in pages]
assert client.post("/login", data={{"username": "admin", "password": "a long password 1"}}).status_code == 302
for page in ["/admin", "/admin/tables", "/gallery/evaluate"]:
    assert client.get(page).status_code == 200, page
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print("loaded:", loaded[:5])
sys.exit(1 if loaded else 0)
"""
    _passes_in_a_fresh_process(script, timeout=120)


def test_serving_the_default_ensemble_loads_neither_tensorflow_nor_onnxruntime(tmp_path):
    """The default hears Google's speech embedding: served as one LiteRT graph (ml/graph.py),
    a web worker classifying and listening with it imports no TensorFlow and no onnxruntime."""
    script = f"""
import io, sys
import numpy as np, soundfile as sf
from webapp import create_app
app = create_app({{"HARK_INSTANCE": {str(tmp_path / 'instance')!r}, "HARK_RUNS": {str(tmp_path / 'runs')!r},
                  "HARK_DEFAULT_MODEL": {str(ROOT / 'models' / 'default')!r},
                  "HARK_ADMIN_PASSWORD": "a long password 1", "WTF_CSRF_ENABLED": False}})
client = app.test_client()
wave = np.random.default_rng(0).normal(0, 0.05, 48000).astype(np.float32)
def wav():
    buf = io.BytesIO(); sf.write(buf, wave, 16000, format="WAV"); buf.seek(0); return buf
for route in ("/api/predict", "/api/detect"):
    r = client.post(route, data={{"file": (wav(), "x.wav")}}, content_type="multipart/form-data")
    assert r.status_code == 200, (route, r.status_code, r.get_data(as_text=True)[:300])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "onnxruntime"))
print("loaded:", loaded[:5])
sys.exit(1 if loaded else 0)
"""
    _passes_in_a_fresh_process(script, timeout=180)


def test_json_routes_are_served_by_api_modules(app):
    """Every route under /api/ or /admin/api/ is a view of an api.py (but the admin's folder
    evaluation and the versions' downloads, which keep their page and their JSON together)."""
    together = ("webapp.admin.evaluations", "webapp.versions.downloads")
    served = {rule.rule: app.view_functions[rule.endpoint].__module__ for rule in app.url_map.iter_rules()
              if rule.rule.startswith(("/api/", "/admin/api/"))}
    assert "/admin/api/jobs" in served and "/admin/api/datasets/<key>/clips" in served
    wrong = {r: m for r, m in served.items() if not m.endswith(".api") and m not in together}
    assert wrong == {}
