"""Rewrite tests/golden/outputs.json from the current code (see cases.py)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tests.golden.cases import cases
from tests.golden.run import run_case

OUTPUTS = Path(__file__).with_name("outputs.json")


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in cases().items():
            results[name] = run_case(argv, Path(tmp))
    OUTPUTS.write_text(json.dumps(results, indent=0, sort_keys=True, allow_nan=True) + "\n")
    print(f"wrote {len(results)} cases to {OUTPUTS}")


if __name__ == "__main__":
    main()
