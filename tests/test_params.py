"""The scikit-learn parameter contract, checked on every facade (one implementation: ``ebmlab._core.params``)."""

import pytest

from ebmlab import ConfigError, EnergyModel
from ebmlab.apps import JEM, LatentEBM
from ebmlab.generators import GEBM

FACADES = [EnergyModel, JEM, LatentEBM, GEBM]


@pytest.mark.parametrize("cls", FACADES, ids=lambda c: c.__name__)
def test_get_params_is_the_constructor(cls):
    model = cls()
    params = model.get_params(deep=False)
    assert list(params) == cls.parameter_names()
    assert len(params) > 3
    clone = cls(**params)  # the constructor only stores: a clone from get_params has the same parameters
    assert clone.get_params(deep=False) == params
    assert repr(model).startswith(f"{cls.__name__}(") and all(f"{k}=" in repr(model) for k in params)


@pytest.mark.parametrize("cls", FACADES, ids=lambda c: c.__name__)
def test_set_params_sets_and_refuses_unknown_names_atomically(cls):
    model = cls()
    name = next(k for k in cls.parameter_names() if k == "random_state")
    assert model.set_params(**{name: 7}) is model
    assert model.get_params()[name] == 7
    before = model.get_params(deep=False)
    with pytest.raises(ConfigError, match=r"unknown parameter 'no_such_option'.*valid parameters are: .*random_state"):
        model.set_params(random_state=11, no_such_option=1)
    assert model.get_params(deep=False) == before  # nothing was set by the refused call
