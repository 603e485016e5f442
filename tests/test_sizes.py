"""Module and function sizes where the project keeps them small: no file over 400 lines and no function over
80 lines in bench/, measure/, device/, report/, remote/ and cli/, unless the code gives a one-line reason
where a longer one is clearer: "(Over 400 lines: ...)" in a module's docstring, "# long: ..." on the line
above a function's `def`."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from eb_testutil import ROOT

PKG = ROOT / "edgebranchy"
PACKAGES = ("bench", "measure", "device", "report", "remote", "cli")
MAX_FILE, MAX_FUNCTION = 400, 80


def too_long(path: Path) -> list[str]:
    """What in `path` is over the limits without its reason (file-relative descriptions)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    out = []
    if len(lines) > MAX_FILE and "(Over 400 lines:" not in (ast.get_docstring(tree) or ""):
        out.append(f"{len(lines)} lines")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION and not (first >= 2 and lines[first - 2].strip().startswith("# long:")):
                out.append(f"{node.name} at line {node.lineno}: {n} lines")
    return out


def test_the_size_check_sees_long_functions_and_files_and_their_reasons(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    f = tmp_path / "m.py"
    f.write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert too_long(f) == [f"long at line 5: {MAX_FUNCTION + 1} lines"]
    f.write_text(f"# long: one table, read top to bottom\ndef long():\n{body}\n")
    assert too_long(f) == []
    f.write_text("\n" * MAX_FILE + "x = 1\n")
    assert too_long(f) == [f"{MAX_FILE + 1} lines"]
    f.write_text('"""A module.\n\n(Over 400 lines: one reason.)\n"""\n' + "\n" * MAX_FILE)
    assert too_long(f) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_and_functions_stay_small(package):
    files = sorted((PKG / package).rglob("*.py"))
    assert files
    found = {str(f.relative_to(PKG)): too_long(f) for f in files}
    assert not {k: v for k, v in found.items() if v}


def test_no_module_in_the_package_is_over_400_lines():
    """The file limit holds everywhere in the package (the function limit only in the packages above)."""
    over = {}
    for f in sorted(PKG.rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE and "(Over 400 lines:" not in (ast.get_docstring(ast.parse(text)) or ""):
            over[str(f.relative_to(PKG))] = len(text.splitlines())
    assert not over
