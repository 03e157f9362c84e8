"""Shared fixtures. Tests on real MNIST fail, never skip, when the data is missing: a green run
must mean the real pipeline was exercised."""
import functools

import pytest

import data
import train
from files import ROOT

DATA_DIR = ROOT / 'data'


def missing_data(error):
    pytest.fail(f'real MNIST is needed for this test: {error}\n'
                f'Copy the four files: mkdir -p data/MNIST/raw && cp ../shared/mnist/*.gz data/MNIST/raw/')


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


def train_interrupted(epoch, **options):
    """Run train.train as Ctrl-C would leave it: KeyboardInterrupt as `epoch` starts training
    (after epoch - 1 was saved)."""
    def interrupt(done, row):
        if done == epoch - 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(callback=interrupt, **options)
