"""The studio's boundaries, read from the package's source: the `spaces` package is known to the ZeroGPU
runner alone, the studio imports no door (gradio, HTTP, argparse), and every refusal sentence is typed
in one place (pllava_demo/refusals.py), whichever door says it."""

import ast
from pathlib import Path

import pytest

from pllava_demo import refusals

PACKAGE = Path(__file__).resolve().parent.parent / "pllava_demo"
APP = PACKAGE.parent / "app.py"


def imported(path: Path) -> set[str]:
    """Every module name an `import` or `from ... import` in the file names (relative ones as written)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + [APP]


def test_only_the_zerogpu_runner_imports_or_names_spaces():
    knowing = [p for p in sources() if {"spaces"} & {n.split(".")[0] for n in imported(p)}
               or "find_spec(\"spaces\")" in p.read_text()]
    assert [p.relative_to(PACKAGE.parent).as_posix() for p in knowing] == ["pllava_demo/studio/zerogpu_runner.py"]
    # no module keeps the old home of the ZeroGPU code, and the engine and api_types ask no runner
    assert not (PACKAGE / "zerogpu.py").exists() and not (PACKAGE / "ui" / "gpu_calls.py").exists()
    for path in (PACKAGE / "chat" / "engine.py", PACKAGE / "api_types.py"):
        assert not any("zerogpu" in n for n in imported(path)), path


def test_the_studio_imports_no_door():
    doors = {"gradio", "gradio_client", "fastapi", "starlette", "argparse", "httpx"}
    for path in sorted((PACKAGE / "studio").glob("*.py")):
        names = imported(path)
        assert not {n.split(".")[0] for n in names} & doors, path
        assert not [n for n in names if n.lstrip(".").startswith(("ui", "openai_api", "cli"))], path


@pytest.mark.parametrize("name", [n for n in dir(refusals) if n.isupper()])
def test_each_refusal_sentence_is_typed_once(name):
    sentence = getattr(refusals, name)
    typed = [p.relative_to(PACKAGE.parent).as_posix() for p in sources() if sentence in p.read_text()]
    assert typed == ["pllava_demo/refusals.py"]
