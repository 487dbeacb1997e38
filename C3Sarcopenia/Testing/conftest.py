"""Make the Lib importable from a source checkout, and share small fixtures."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "C3Sarcopenia"))
SHARED = ROOT.parent / "shared" / "data"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_phantom_options():
    """Coarse phantoms: the anatomy of the clinical ones at a fraction of the voxels."""
    from C3SarcopeniaLib.phantoms.phantom import PhantomOptions

    return PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3.0, 3.0))


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory, small_phantom_options):
    """Five small phantoms on disk with their manifest."""
    from C3SarcopeniaLib.phantoms.phantom import write_phantom_cohort

    return write_phantom_cohort(5, 123, tmp_path_factory.mktemp("cohort"), small_phantom_options)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, phantom_cohort):
    """A models folder (section/ and muscle/) trained for a few steps: it exercises the
    wiring, not accuracy."""
    from C3SarcopeniaLib.training import train

    root = tmp_path_factory.mktemp("models")
    for stage, preset in (("section", "fast"), ("muscle", "paper")):
        train([phantom_cohort], stage, root / stage, preset, folds=2, iterations=3, seed=0,
              device="cpu", command="test", trained_on="test phantoms", synthetic=True,
              log=lambda message: None)
    return root
