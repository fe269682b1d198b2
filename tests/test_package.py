"""Tests of the package surface: lazy top-level names, light imports, layering without cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import softloc

ROOT = Path(softloc.__file__).parent
#: The maths core: never imports the layers above it.
CORE = ("_checks", "_io", "_version", "timebase", "counting", "losses", "noise", "decode",
        "metrics", "features", "hilbert", "smoothing")
UPPER = ("data", "training", "inference", "experiments", "cli", "config", "models", "plots",
         "evaluation")


def _loaded_after(code: str, names: list[str]) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of ``names`` are in sys.modules then."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps({{n: n in sys.modules for n in {names}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_softloc_loads_no_torch():
    loaded = _loaded_after("import softloc; softloc.__version__", ["torch", "numpy"])
    assert loaded == {"torch": False, "numpy": False}


def test_import_counting_stays_light():
    heavy = ["mir_eval", "soundfile", "lightning", "matplotlib", "yaml", "scipy.signal",
             "numba", "softloc.inference", "softloc.models", "softloc.data", "softloc.losses",
             "softloc.training"]
    loaded = _loaded_after("import softloc.counting", heavy)
    assert [name for name, is_loaded in loaded.items() if is_loaded] == []


def test_core_modules_never_load_the_layers_above():
    code = "\n".join(f"import softloc.{m}" for m in CORE)
    loaded = _loaded_after(code, [f"softloc.{m}" for m in UPPER] + ["lightning"])
    assert [name for name, is_loaded in loaded.items() if is_loaded] == []


def _module_level_imports(path: Path) -> set[str]:
    """softloc modules imported at module level (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue  # type-only imports never run
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("softloc"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("softloc"):
                    found.add(node.module)
                    # `from softloc.pkg import sub` may import the submodule `softloc.pkg.sub`
                    found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph = {}
    for name, path in modules.items():
        deps = {d for d in _module_level_imports(path) if d in modules and d != name}
        # importing a submodule runs its packages' __init__ first
        deps |= {p for d in deps for p in _parents(d) if p in modules}
        # ... except the module's own packages, which are already initialising when it runs
        graph[name] = deps - set(_parents(name)) - {name}
    return graph


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@pytest.mark.parametrize("scope", ["core", "package"])
def test_no_import_cycle(scope):
    graph = _import_graph()
    core = {n for n in graph if scope == "package" or n == "softloc" or n.split(".")[1] in CORE}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def dfs(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph[node] & core):
            if state.get(dep) == 1:
                cycle.extend(stack[stack.index(dep):] + [dep])
                return True
            if dep not in state and dfs(dep, stack + [dep]):
                return True
        state[node] = 2
        return False

    for node in sorted(core):
        if node not in state and dfs(node, [node]):
            break
    assert not cycle, " -> ".join(cycle)


def test_public_names_resolve_lazily_and_are_listed():
    assert softloc.__all__[0] == "__version__"
    assert len(set(softloc.__all__)) == len(softloc.__all__)
    import importlib

    for name in softloc.__all__[1:]:
        module = importlib.import_module(softloc._EXPORTS[name])  # noqa: SLF001 - own module
        assert getattr(softloc, name) is getattr(module, name), name
    assert set(softloc.__all__) <= set(dir(softloc))
    with pytest.raises(AttributeError, match="module 'softloc' has no attribute 'nothing'"):
        _ = softloc.nothing  # noqa: B018


def _private_imports(path: Path) -> list[tuple[int, str, str]]:
    """``(line, module, name)`` of each softloc private name a test file imports: a name with
    a leading underscore (dunders aside), or a module of the package whose own name has one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("softloc"):
            for alias in node.names:
                parts = [*node.module.split("."), alias.name]
                private = [p for p in parts if p.startswith("_") and not p.startswith("__")]
                if private:
                    found.append((node.lineno, node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "softloc" and any(p.startswith("_") for p in parts):
                    found.append((node.lineno, ".".join(parts[:-1]), parts[-1]))
    return found


def _tested_by(test_name: str, module: str, name: str) -> bool:
    """A test module may reach the private names of the module it tests: the module's own
    name (or the private module's, without its underscore) is a run of the words of the test
    file's name (``noise_study`` in ``noise_study``, ``drums`` in ``generators_drums``)."""
    subject = name.lstrip("_") if module == "softloc" else module.split(".")[-1].lstrip("_")
    return f"_{subject}_" in f"_{test_name}_"


def test_tests_use_only_the_private_names_of_the_module_they_test():
    tests = Path(__file__).parent
    offending = [f"{path.name}:{line}: {module}.{name}"
                 for path in sorted(tests.glob("test_*.py"))
                 for line, module, name in _private_imports(path)
                 if not _tested_by(path.stem.removeprefix("test_"), module, name)]
    assert offending == [], ("tests must go through the public API of other modules; "
                             f"private names imported: {offending}")


def test_the_private_name_rule_catches_a_foreign_import(tmp_path):
    probe = tmp_path / "test_metrics_probe.py"
    probe.write_text("from softloc.inference.batch import _events_and_probs\n"
                     "from softloc.metrics import _ok\n"
                     "import softloc._io.x\n")
    found = _private_imports(probe)
    assert [(m, n) for _, m, n in found] == [("softloc.inference.batch", "_events_and_probs"),
                                            ("softloc.metrics", "_ok"), ("softloc._io", "x")]
    assert [_tested_by("metrics_probe", m, n) for _, m, n in found] == [False, True, False]
    assert not _tested_by("experiment_segmentation", "softloc", "_io")  # a word, not letters


#: Rooms of the package and the rooms above them, which they must never import, not even inside
#: a function (data flows downward; the core is checked at load time above).
_ABOVE = {
    "config": {"models", "training", "inference", "experiments", "cli", "plots"},
    "data": {"models", "training", "inference", "experiments", "cli", "plots", "evaluation"},
    "models": {"data", "training", "inference", "experiments", "cli", "plots"},
    "evaluation": {"models", "training", "inference", "experiments", "cli"},
    "inference": {"training", "experiments", "cli"},
    "plots": {"training", "experiments", "cli"},
    "training": {"experiments", "cli"},
    "experiments": {"cli"},
}


def _upward_imports(text: str, room: str) -> list[tuple[int, str]]:
    """``(line, module)`` of each import in ``text`` of a room above ``room``."""
    found = []
    for node in ast.walk(ast.parse(text)):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("softloc."):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("softloc.")]
        found += [(node.lineno, name) for name in names if name.split(".")[1] in _ABOVE[room]]
    return found


def test_no_room_imports_a_room_above_it_anywhere():
    upward = [f"{path.relative_to(ROOT.parent)}:{line}: {name}"
              for path in sorted(ROOT.rglob("*.py"))
              if (room := path.relative_to(ROOT).with_suffix("").parts[0]) in _ABOVE
              for line, name in _upward_imports(path.read_text(encoding="utf-8"), room)]
    assert upward == []


def test_the_upward_import_rule_sees_imports_inside_functions():
    text = ("from softloc.data.layout import load_dataset\n"
            "def f():\n    from softloc.models.sensor import INPUT_ARGS\n"
            "    import softloc.training.loaders\n")
    assert _upward_imports(text, "data") == [(3, "softloc.models.sensor"),
                                            (4, "softloc.training.loaders")]
    assert _upward_imports(text, "training") == []


def _readme_python_blocks() -> list[str]:
    import re

    text = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_loss_example_runs_and_gives_the_shapes_it_states():
    """The README's first example, as printed there: the losses are finite scalars with
    gradients, and the count distribution has the (batch, class, k_max + 1) shape its comment
    gives and sums to 1."""
    import torch

    code = next(b for b in _readme_python_blocks() if "loco_loss" in b)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    dist, loss = namespace["dist"], namespace["loss"]
    assert dist.shape == (2, 3, 9) and "(2, 3, 9)" in code
    torch.testing.assert_close(dist.sum(-1), torch.ones(2, 3, dtype=dist.dtype))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_readme_detector_example_returns_time_label_probability_triples(tmp_path, monkeypatch):
    """The README's detector example on the shipped model (``Detector.load()``, as its comment
    offers) and a written ``song.wav``: events are (seconds, class, peak p) as its comment shows."""
    import numpy as np
    import soundfile as sf

    code = next(b for b in _readme_python_blocks() if "Detector.load" in b)
    assert 'Detector.load("RUN")' in code
    sr = 22050
    rng = np.random.default_rng(0)
    audio = 0.01 * rng.standard_normal(2 * sr)
    for i, t in enumerate((0.3, 0.8, 1.3)):  # three decaying noise bursts
        n = int(0.1 * sr)
        audio[int(t * sr): int(t * sr) + n] += (0.5 + 0.2 * i) * rng.standard_normal(n) * \
            np.exp(-np.arange(n) / (0.02 * sr))
    sf.write(tmp_path / "song.wav", audio, sr)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace('Detector.load("RUN")', "Detector.load()"), "README.md", "exec"),
         namespace)  # noqa: S102 - our own README
    events, detector = namespace["events"], namespace["detector"]
    assert isinstance(events, list) and events  # the bursts are loud enough to fire
    for time, label, peak in events:
        assert isinstance(time, float) and 0.0 <= time <= 2.0
        assert label in detector.classes
        assert isinstance(peak, float) and 0.0 < peak <= 1.0
    assert events == sorted(events, key=lambda e: (e[0], detector.classes.index(e[1])))
