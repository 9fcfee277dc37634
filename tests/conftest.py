from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="session")
def kodak() -> list[Path]:
    """Kodak photos: the shared evaluation copy when present, else the samples the repo ships."""
    paths = sorted(KODAK.glob("*.png")) or sorted(SAMPLES.glob("*.png"))
    if not paths:
        pytest.fail("no Kodak images found (samples/ is part of the repo)")
    return paths


@pytest.fixture(scope="session")
def encoder():
    from encoder.codec import default_encoder

    return default_encoder()
