"""MNIST loading: IDX parsing, integrity checks with clear errors, and torchvision-equal preprocessing."""
import gzip
import shutil
import struct

import pytest
import torch
from PIL import Image
from torchvision import transforms

import data
from conftest import DATA_DIR


def idx_bytes(array):
    header = struct.pack('>HBB', 0, 0x08, array.dim()) + struct.pack(f'>{array.dim()}I', *array.shape)
    return header + array.numpy().tobytes()


def test_parse_idx_round_trip():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(data.parse_idx(idx_bytes(images)), images)
    labels = torch.tensor([7, 0, 9], dtype=torch.uint8)
    assert torch.equal(data.parse_idx(idx_bytes(labels)), labels)


def test_parse_idx_rejects_truncated_and_foreign_bytes():
    content = idx_bytes(torch.zeros(2, 28, 28, dtype=torch.uint8))
    with pytest.raises(data.DataError, match='truncated or corrupt'):
        data.parse_idx(content[:-10], 'x')
    with pytest.raises(data.DataError, match='not an IDX file'):
        data.parse_idx(b'PK\x03\x04 a zip file', 'x')


@pytest.fixture
def raw_copy(tmp_path):
    """A data folder holding copies of the real files, to damage."""
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in data.FILES:
        shutil.copy(data.raw_dir(DATA_DIR) / f'{name}.gz', raw)
    return tmp_path


def test_reads_gzipped_and_plain_files_alike(raw_copy):
    name = 't10k-labels-idx1-ubyte'
    packed = data.read_verified(raw_copy, name, download=False)
    raw = data.raw_dir(raw_copy)
    (raw / name).write_bytes(gzip.decompress((raw / f'{name}.gz').read_bytes()))
    (raw / f'{name}.gz').unlink()
    assert data.read_verified(raw_copy, name, download=False) == packed


def test_missing_file_says_where_to_put_it(raw_copy):
    (data.raw_dir(raw_copy) / 't10k-images-idx3-ubyte.gz').unlink()
    with pytest.raises(data.DataError, match=r't10k-images-idx3-ubyte\(\.gz\) is missing. Copy the four'):
        data.load_mnist(raw_copy, download=False)


def test_checksum_failure_names_the_file(raw_copy):
    path = data.raw_dir(raw_copy) / 't10k-labels-idx1-ubyte.gz'
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed: a valid file, wrong content
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(data.DataError, match=r't10k-labels-idx1-ubyte.gz: checksum mismatch'):
        data.load_mnist(raw_copy, download=False)


def test_truncated_gzip_is_reported(raw_copy):
    path = data.raw_dir(raw_copy) / 'train-labels-idx1-ubyte.gz'
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(data.DataError, match='train-labels-idx1-ubyte.gz: cannot be read or decompressed'):
        data.load_mnist(raw_copy, download=False)


def test_truncated_plain_file_is_reported(raw_copy):
    raw = data.raw_dir(raw_copy)
    content = gzip.decompress((raw / 't10k-images-idx3-ubyte.gz').read_bytes())
    (raw / 't10k-images-idx3-ubyte').write_bytes(content[:-784])
    with pytest.raises(data.DataError, match='checksum mismatch.*truncated or corrupt'):
        data.load_mnist(raw_copy, download=False)


def test_swapped_files_are_recognised(raw_copy):
    raw = data.raw_dir(raw_copy)
    shutil.copy(raw / 'train-labels-idx1-ubyte.gz', raw / 't10k-labels-idx1-ubyte.gz')
    with pytest.raises(data.DataError, match=r'shape \(60000,\), not \(10000,\): is it another MNIST file renamed'):
        data.load_mnist(raw_copy, download=False)


def test_real_mnist_shapes_and_labels(mnist):
    images, labels = mnist['train']
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))
    assert mnist['test'][0].shape == (10000, 28, 28)


def test_normalisation_equals_torchvision_transforms(mnist):
    images, _ = mnist['test']
    sample = images[:500]
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    # torchvision.datasets.MNIST hands each image to the transform as Image.fromarray(uint8, 'L')
    expected = torch.stack([pipeline(Image.fromarray(img.numpy(), mode='L')) for img in sample])
    ours = data.normalize(sample)
    assert ours.shape == (500, 1, 28, 28)
    assert torch.equal(ours, expected)
    assert ours.min() == -1 and ours.max() == 1


def test_split_is_disjoint_complete_and_fixed():
    train, val = data.split_indices(60000, 5000)
    assert len(train) == 55000 and len(val) == 5000
    assert sorted(torch.cat([train, val]).tolist()) == list(range(60000))
    again_train, again_val = data.split_indices(60000, 5000)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    with pytest.raises(ValueError, match='val_size must be between 0 and 59999'):
        data.split_indices(60000, 60000)


def test_load_splits_on_real_data(mnist):
    splits = data.load_splits(DATA_DIR, val_size=5000, train_subset=1000)
    (x, y), (vx, vy), (tx, ty) = splits['train'], splits['val'], splits['test']
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32 and len(vy) == 5000 and len(ty) == 10000
    train, val = data.split_indices(60000, 5000)
    assert torch.equal(vy, mnist['train'][1][val]) and torch.equal(y, mnist['train'][1][train[:1000]])
    assert torch.equal(vx, data.normalize(mnist['train'][0][val]))


def test_batches_shuffle_every_sample_once_and_keep_order_without_shuffle():
    images = torch.arange(10.0)[:, None]
    labels = torch.arange(10)
    torch.manual_seed(0)
    seen = [(x, y) for x, y in data.batches(images, labels, 4, shuffle=True)]
    assert [len(y) for _, y in seen] == [4, 4, 2]
    ys = torch.cat([y for _, y in seen])
    assert sorted(ys.tolist()) == list(range(10)) and ys.tolist() != list(range(10))
    assert all(torch.equal(x[:, 0].long(), y) for x, y in seen)  # images and labels stay paired
    plain = torch.cat([y for _, y in data.batches(images, labels, 4)])
    assert plain.tolist() == list(range(10))
