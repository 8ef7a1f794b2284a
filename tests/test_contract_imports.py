"""The contract (contract/) needs numpy and pydantic only, and imports neither half: checked in a fresh
interpreter."""

from __future__ import annotations

import subprocess
import sys

from service_harness import REPO

# Every module of the package; then every top-level package that came in with them and is not the standard
# library's (what the interpreter loaded at start-up, the editable install's finder say, does not count).
PROBE = """
import importlib, pkgutil, sys
before = set(sys.modules)
import contract
for module in pkgutil.iter_modules(contract.__path__, "contract."):
    importlib.import_module(module.name)
roots = {name.split(".")[0] for name in set(sys.modules) - before}
stdlib = set(sys.stdlib_module_names) | {r for r in roots if r.startswith("_sysconfigdata")}  # sysconfig's own
print(",".join(sorted(roots - stdlib - {"contract"})))
print(",".join(sorted(name for name in sys.modules if name.split(".")[0] in ("service", "training"))))
"""
# pydantic's own dependencies come with it.
ALLOWED = {"numpy", "pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection"}


def test_the_contract_imports_only_numpy_and_pydantic() -> None:
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    third_party, halves = run.stdout.split("\n")[:2]
    pulled = set(third_party.split(",")) - {""}
    assert pulled <= ALLOWED, f"contract pulled in {sorted(pulled - ALLOWED)}"
    assert {"numpy", "pydantic"} <= pulled, "the probe must have imported the contract's modules"
    assert halves == "", f"contract imports a half of the project: {halves}"
