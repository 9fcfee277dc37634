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


@pytest.fixture(scope="session")
def small_files(encoder, kodak) -> dict[int, bytes]:
    """Real .nic files of a 96x160 crop, one per depth, cheap enough to decode thousands of times."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(kodak[-1]).convert("RGB"))[100:196, 200:360]
    return {d: encoder.encode(img, 3, d, effort="none") for d in (1, 2)}
