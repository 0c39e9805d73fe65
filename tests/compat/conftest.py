"""Programs written the way Asyncz 0.17's documentation writes them, run against asyncz.

Each test module covers one point of docs/migrating-from-asyncz.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # compat_helpers
