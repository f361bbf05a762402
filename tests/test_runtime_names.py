"""No module spells a runtime or target name outside the runtime table, the standalone runner and the
per-runtime folders (issue 21 item 2): every other module reads the names, and every per-runtime fact,
from ``ssc_deploy/runtimes.py``.

A spelling is a string constant (code, f-string part or docstring) that is a name, or that holds a
name in quotes (``"tflite"``, ``'onnx'``: a name in generated code or a docstring's example).
Distribution and module names (``onnxruntime.quantization``, ``ai-edge-litert``), suffixes and
prose ("ExecuTorch's XNNPACK delegate") are not names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ssc_deploy
from ssc_deploy.runtimes import RUNTIME_NAMES, TARGET_NAMES

PACKAGE = Path(ssc_deploy.__file__).resolve().parent
NAMES = frozenset(TARGET_NAMES + RUNTIME_NAMES)
QUOTED = re.compile(r"""(["'])(%s)\1""" % "|".join(sorted(map(re.escape, NAMES), key=len, reverse=True)))
# Where the names may be spelled: the table, the runner that must import nothing of this package,
# and each runtime's own folder.
ALLOWED = ("runtimes.py", "devices/runner/", *(f"export/targets/{t}/" for t in TARGET_NAMES))


def spellings(path: Path) -> list[str]:
    """``LINE: 'constant'`` for every string constant of ``path`` that is or quotes a runtime or target name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in NAMES or QUOTED.search(node.value):
                text = node.value if len(node.value) <= 60 else node.value[:57] + "..."
                found.append(f"{node.lineno}: {text!r}")
    return found


def offenders() -> dict[str, list[str]]:
    """Module (relative to the package) -> its spellings, for every module outside :data:`ALLOWED`."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED):
            continue
        if found := spellings(path):
            out[rel] = found
    return out


def _listing(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{rel}:{line}" for rel, lines in found.items() for line in lines)


def test_the_check_finds_a_spelling(tmp_path):
    for name in NAMES:
        probe = tmp_path / "m.py"
        probe.write_text(f'"""Doc."""\nif x == "{name}":\n    code = "rt = {{\'{name}\': 1}}"\nok = "{name}.runtime"\n')
        assert spellings(probe) == [f"2: {name!r}", f"3: \"rt = {{'{name}': 1}}\""]


def test_no_module_outside_the_allowed_places_spells_a_name():
    found = offenders()
    assert not found, "runtime names spelled outside runtimes.py and the per-runtime folders:\n" + _listing(found)
