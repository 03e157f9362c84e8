"""Shared fixtures. Tests on real MNIST fail, never skip, when the data is missing: a green run
must mean the real pipeline was exercised."""
from pathlib import Path

import pytest

import data

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / 'data'


@pytest.fixture(scope='session')
def mnist():
    try:
        return data.load_mnist(DATA_DIR)  # downloads the files where the network allows
    except data.DataError as e:
        pytest.fail(f'real MNIST is needed for this test: {e}\n'
                    f'Copy the four files: mkdir -p data/MNIST/raw && cp ../shared/mnist/*.gz data/MNIST/raw/')
