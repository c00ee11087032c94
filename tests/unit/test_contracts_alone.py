"""contracts/ is what a Python subscriber imports alone: it needs nothing but msgspec and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def test_contracts_import_only_the_standard_library_msgspec_and_themselves():
    foreign = []
    for path in sorted(CONTRACTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("msgspec", "contracts"):
                    foreign.append(f"{path.name}: {module}")
    assert foreign == []
