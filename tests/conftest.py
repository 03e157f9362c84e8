"""Shared fixtures. Tests on real MNIST fail, never skip, when the data is missing: a green run
must mean the real pipeline was exercised."""
from pathlib import Path

import pytest

import data
import train

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / 'data'


@pytest.fixture(scope='session')
def mnist():
    try:
        return data.load_mnist(DATA_DIR)  # downloads the files where the network allows
    except data.DataError as e:
        pytest.fail(f'real MNIST is needed for this test: {e}\n'
                    f'Copy the four files: mkdir -p data/MNIST/raw && cp ../shared/mnist/*.gz data/MNIST/raw/')


def train_interrupted(monkeypatch, epoch, **options):
    """Run train.train as Ctrl-C would leave it: KeyboardInterrupt as `epoch` starts training."""
    real, calls = train.train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(epoch)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train, 'train_epoch', interrupted)
        with pytest.raises(KeyboardInterrupt):
            train.train(**options)
