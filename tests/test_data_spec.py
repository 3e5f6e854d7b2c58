"""`--data` specifications: toy names, gray:NAME, ising:key=value, files; clear errors otherwise."""
import pytest
import torch

from ebmlab import ConfigError
from ebmlab.data.spec import draw, parse_spec, true_energy


def test_specs_parse_and_draw():
    assert parse_spec("moons") == ("toy", "moons", {})
    assert parse_spec("gray:2spirals") == ("gray", "2spirals", {})
    kind, _, params = parse_spec("ising:side=4,coupling=0.3,field=0")
    assert kind == "ising" and params == {"side": 4, "coupling": 0.3, "field": 0.0}
    assert parse_spec("my/data.npy")[0] == "file"
    x = draw("ising:side=3,coupling=0.2", 7, seed=0)
    assert x.shape == (7, 9) and set(x.unique().tolist()) <= {0.0, 1.0}
    g = draw("gray:8gaussians", 5, seed=0)
    assert g.shape == (5, 32)
    assert torch.equal(draw("moons", 4, seed=1), draw("moons", 4, seed=1))
    assert true_energy("ising:side=3,coupling=0.2").J.shape == (9, 9)
    assert true_energy("moons") is None


@pytest.mark.parametrize(
    "spec, match",
    [
        ("9gaussians", "unknown data set '9gaussians'"),
        ("gray:nothing", "unknown data set 'nothing'"),
        ("ising:side=4", "needs coupling"),
        ("ising:side=4,coupling=0.3,temp=2", "bad item 'temp=2'"),
        ("ising:side=four,coupling=0.3", "side in .* must be of type int"),
        ("", "must be a data set name or a file path"),
    ],
)
def test_bad_specs_say_what_is_allowed(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_spec(spec)
