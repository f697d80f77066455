"""Regenerate the Python code for protos/ into bridge/_proto/.

Run after editing a .proto file: ``python scripts/gen_protos.py``.
tests/test_contract.py fails while the committed code is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge._protogen import OUT_DIR, generate

if __name__ == "__main__":
    for path in generate(OUT_DIR):
        print(path.relative_to(OUT_DIR.parent.parent))
