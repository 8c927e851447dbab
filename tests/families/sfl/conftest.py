import sys
from pathlib import Path

# The shared document builders live next to the tests (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))
