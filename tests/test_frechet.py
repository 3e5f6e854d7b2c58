"""frechet_digits: the cached digits classifier and the Fréchet distance on its features."""
import json

import pytest
import torch

from ebmlab import DataError
from ebmlab.data import load_digits
from ebmlab.metrics import frechet as F
from ebmlab.metrics import frechet_digits


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EBMLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    mp.setattr(F, "_MODULE", None)
    yield F.digits_classifier()
    mp.undo()


def test_classifier_is_trained_cached_and_reloaded(classifier):
    path = F._cache_file()
    assert path.exists() and path.parent == F.cache_dir()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["test_accuracy"] >= 0.95
    xt, yt = load_digits("test")
    with torch.no_grad():
        logits = classifier(xt)
    assert logits.shape == (xt.shape[0], 10)
    assert float((logits.argmax(1) == yt).double().mean()) == pytest.approx(meta["test_accuracy"])
    assert F.digits_classifier() is classifier  # in-process cache
    F._MODULE = None
    reloaded = F.digits_classifier()  # from the file, not retrained
    with torch.no_grad():
        assert torch.equal(reloaded(xt), logits)
    assert not any(p.requires_grad for p in reloaded.parameters())


def test_training_is_reproducible_from_its_seed():
    a = F.train_digits_classifier(seed=3, epochs=1).state_dict()
    b = F.train_digits_classifier(seed=3, epochs=1).state_dict()
    c = F.train_digits_classifier(seed=4, epochs=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_degraded_digits_rank_worse_than_clean(classifier):
    xtr, _ = load_digits("train")
    xte, _ = load_digits("test")
    g = torch.Generator().manual_seed(0)
    clean = frechet_digits(xte, xtr)
    noisy = [frechet_digits((xte + s * torch.randn(xte.shape, generator=g)).clamp(0, 1), xtr) for s in (0.1, 0.2, 0.4)]
    blurred = frechet_digits(torch.nn.functional.conv2d(xte, torch.full((1, 1, 3, 3), 1 / 9), padding=1), xtr)
    assert clean < noisy[0] < noisy[1] < noisy[2]
    assert clean < blurred
    assert frechet_digits(xtr, xtr) == pytest.approx(0.0, abs=1e-4)


def test_frechet_distance_matches_gaussian_closed_form():
    g = torch.Generator().manual_seed(1)
    k, n = 5, 20000
    a = torch.randn(n, k, generator=g, dtype=torch.float64)
    b = 0.5 + 2.0 * torch.randn(n, k, generator=g, dtype=torch.float64)
    exact = k * 0.25 + k * (1.0 - 2.0) ** 2  # |mu|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)
    assert F.frechet_distance(a, b) == pytest.approx(exact, rel=0.03)


def test_bad_input(classifier):
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(DataError, match="8, 8"):
        frechet_digits(torch.zeros(4, 1, 28, 28), x)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        frechet_digits(x + 2.0, x)
    with pytest.raises(DataError, match="float"):
        frechet_digits(x.long(), x)
