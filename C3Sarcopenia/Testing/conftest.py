"""Make the Lib importable from a source checkout, and share small fixtures."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "C3Sarcopenia"))
SHARED = ROOT.parent / "shared" / "data"
