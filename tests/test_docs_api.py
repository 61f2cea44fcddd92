"""docs/api.md's examples run: every ```python block, in order, in one namespace."""
import re
from pathlib import Path

import precsim

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"),
                      flags=re.S | re.M)


def test_the_api_page_has_examples_and_lists_every_public_name():
    assert len(_blocks()) >= 2
    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}" in text for name in precsim.__all__)


def test_the_api_page_examples_run(capsys):
    namespace: dict = {}
    for block in _blocks():
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert "TTFT" in out and "error: " in out and "no-such-chip" in out
