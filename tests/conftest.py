"""Shared fixtures, and the test tiers. Tests that need real MNIST ask for the `mnist` fixture (or one built on
it): when the four files are missing they skip, with the reason, on a developer's machine, and fail in CI
(CI=true), where a green run must mean the real pipeline was exercised.

`python -m pytest` runs everything (CI does); `python -m pytest -m "not slow"` leaves out the slow tier: every
test that trains on MNIST splits or drives the app's window (it asks for one of SLOW_FIXTURES) and those
marked @pytest.mark.slow (a CLI run in a process of its own, the notebook)."""
import functools
import os

import pytest
import torch

import data
from files import DATA_DIR

SLOW_FIXTURES = {'splits', 'quick', 'short_test_split', 'display', 'own_display', 'app', 'window'}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def missing_data(error):
    message = (f'real MNIST is needed for this test: {error}\n'
               f'Copy the four files: mkdir -p data/MNIST/raw && cp ../shared/mnist/*.gz data/MNIST/raw/')
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope='session')
def mnist():
    try:
        return data.load_mnist(DATA_DIR)  # downloads the files where the network allows
    except data.DataError as e:
        missing_data(e)


@pytest.fixture(scope='session')
def splits(mnist):
    """splits(val_size): data.load_splits's result, read once per val_size for the whole session
    (train.train takes it as `data`; slice it, never change it in place)."""
    return functools.cache(lambda val_size=5000: data.load_splits(DATA_DIR, val_size))


@pytest.fixture
def float64():
    """Random test tensors in float64, so 1e-6 relative error measures the maths, not rounding."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
