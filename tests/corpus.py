"""Where the tests find real MilkDrop presets: `$CQ_CORPUS`, or the team's full corpus (../shared, 240
presets) when it is beside the checkout, else the 23-preset sample kept in tests/data (public-domain projectM "cream of the
crop" presets, with their odd file names), so CI exercises the .milk path too."""
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CANDIDATES = [Path(path) for path in [os.environ.get("CQ_CORPUS", "")] if path] + [
    _HERE.parents[1] / "shared" / "corpus" / "cream-of-the-crop",
    _HERE / "data" / "cream-of-the-crop"]
CORPUS = next(path for path in _CANDIDATES if path.is_dir())
