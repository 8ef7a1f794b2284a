"""The README's commands run as written from a fresh clone: the project's programs are called from the venv that
`make` sets up, never from a PATH that may not hold them."""

from __future__ import annotations

import re

from service_harness import REPO

# Programs that exist only inside the project's venvs.
VENV_PROGRAMS = {"disentangle-train", "disentangle-serve", "torchrun", "python", "python3", "pip", "pytest", "ruff"}


def shell_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_commands_call_the_projects_programs_from_the_venv() -> None:
    lines = shell_lines()
    assert any("torchrun" in line for line in lines) and any("disentangle-train fit" in line for line in lines)
    for line in lines:
        for command in re.split(r"&&|;|\|", line.split("#")[0]):
            words = command.split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # NAME=value prefixes
                words = words[1:]
            if words and words[0] in ("do", "then"):
                words = words[1:]
            assert not (words and words[0] in VENV_PROGRAMS), f"README runs {words[0]!r} from PATH: {line}"
