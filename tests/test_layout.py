from pathlib import Path

import bench
import variants

ROOT = Path(__file__).resolve().parents[1]


def test_packages_import_from_this_repository():
    # A same-named package elsewhere on sys.path (a PyPI 'bench' or 'variants') must not shadow ours.
    assert Path(bench.__file__).resolve().parent == ROOT / "bench"
    assert Path(variants.__file__).resolve().parent == ROOT / "variants"
