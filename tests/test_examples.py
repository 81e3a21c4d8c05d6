"""The programs in examples/ run, and the README shows the same code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "stun_codec.py"


def test_stun_codec_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "success: True" in lines
    assert "mapped address: ('192.0.2.10', 54321)" in lines
    assert "integrity ok: True" in lines
    assert any(line.startswith("dropped: the length field") for line in lines)


def test_readme_example_matches_file() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "README.md has no python code block"
    assert blocks[0] in EXAMPLE.read_text()
