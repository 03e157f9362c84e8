"""MNIST loading: IDX parsing, integrity checks with clear errors, torchvision-equal preprocessing, augmentation."""
import errno
import gzip
import http.client
import math
import os
import shutil
import struct
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

import data
import preprocess
from files import DATA_DIR


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
def raw_copy(tmp_path, mnist):
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


@pytest.mark.parametrize('offset', [200, 500, 1000, 3000])
def test_bit_flip_in_a_compressed_file_is_reported(raw_copy, offset):
    """One flipped bit in the deflate stream: zlib fails (e.g. 'invalid distance too far back')
    or the CRC does, depending on where it lands; either way the file is named."""
    path = data.raw_dir(raw_copy) / 't10k-labels-idx1-ubyte.gz'
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x10
    path.write_bytes(bytes(content))
    with pytest.raises(data.DataError, match=rf'^{path}: cannot be read or decompressed .*delete it and copy'):
        data.load_mnist(raw_copy, download=False)


def test_unreadable_folder_is_reported(raw_copy, monkeypatch):
    """Tests run as root, which ignores permission bits, so the operating system's answer is
    stood in for: every stat inside the folder fails with EACCES, as it does for a user when the
    folder's mode is 000 (Path.exists then raises PermissionError)."""
    raw = data.raw_dir(raw_copy)
    real_stat = Path.stat

    def stat(self, **kwargs):
        if self.parent == raw:
            raise PermissionError(errno.EACCES, 'Permission denied', str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, 'stat', stat)
    for download in (False, True):
        with pytest.raises(data.DataError, match=rf'^{raw}/\S+: permission denied\. Make the data folder readable'):
            data.load_mnist(raw_copy, download=download)


@pytest.mark.parametrize('file_at', ['.', 'MNIST', 'MNIST/raw'])
@pytest.mark.parametrize('download', [False, True])
def test_a_file_where_the_data_folder_should_be(tmp_path, file_at, download):
    data_dir = tmp_path / 'data'
    (data_dir / file_at).parent.mkdir(parents=True, exist_ok=True)
    (data_dir / file_at).write_text('not a folder')
    with pytest.raises(data.DataError, match=rf'^{data_dir / file_at if file_at != "." else data_dir} '
                                             rf'is a file, not a folder: .*--data-dir'):
        data.load_mnist(data_dir, download=download)


@pytest.mark.parametrize('name', ['t10k-labels-idx1-ubyte', 't10k-labels-idx1-ubyte.gz'])
def test_a_folder_where_a_file_should_be(raw_copy, name):
    raw = data.raw_dir(raw_copy)
    (raw / 't10k-labels-idx1-ubyte.gz').unlink()
    (raw / name).mkdir()
    with pytest.raises(data.DataError, match=rf'^{raw / name} is a folder, not the MNIST file: remove it'):
        data.load_mnist(raw_copy, download=False)


def test_failed_download_names_each_mirror_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """Offline, or a connection cut mid-transfer (http.client.IncompleteRead is no OSError)."""
    def unreachable(url, timeout):
        raise urllib.error.URLError('Name or service not known')

    class Cut:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, *args):
            raise http.client.IncompleteRead(b'partial', 1000)

    for urlopen, reason in [(unreachable, 'Name or service not known'), (lambda url, timeout: Cut(), 'IncompleteRead')]:
        monkeypatch.setattr(data.urllib.request, 'urlopen', urlopen)
        with pytest.raises(data.DataError) as error:
            data.load_mnist(tmp_path, download=True)
        message = str(error.value)
        assert message.startswith(f'{data.raw_dir(tmp_path)}/train-images-idx3-ubyte(.gz) is missing.')
        assert all(f'{mirror}: ' in message for mirror in data.MIRRORS) and reason in message, message
        assert list(data.raw_dir(tmp_path).iterdir()) == []


def test_unwritable_folder_for_a_download_is_reported(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, 'Permission denied', str(self))

    monkeypatch.setattr(Path, 'mkdir', refuse)
    with pytest.raises(data.DataError, match=rf'^{data.raw_dir(tmp_path)}: permission denied\. Make the data folder'):
        data.load_mnist(tmp_path, download=True)


def test_extract_into_a_full_disk_is_reported(raw_copy, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(data.DataError, match=r'could not write \S*train-images-idx3-ubyte \(No space left on device\)\. '
                                             r'Check the disk'):
        data.extract(raw_copy, download=False)
    assert sorted(p.name for p in data.raw_dir(raw_copy).iterdir()) == sorted(f'{name}.gz' for name in data.FILES)


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
    ours = preprocess.normalize(sample)
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
    assert torch.equal(vx, preprocess.normalize(mnist['train'][0][val]))


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


# ---------------------------------------------------------------- augmentation

@pytest.fixture(scope='module')
def digits(mnist):
    return preprocess.normalize(mnist['train'][0][:256]), mnist['train'][1][:256]


def test_augment_keeps_each_image_in_its_place():
    """Image i of the output is a distortion of image i of the input, so labels stay aligned:
    with images of one distinct grey each, the centre of output i has grey i."""
    greys = torch.linspace(-1, 1, 300)
    images = greys[:, None, None, None].expand(300, 1, 28, 28).contiguous()
    torch.manual_seed(0)
    out = data.augment(images)
    assert torch.allclose(out[:, 0, 10:18, 10:18], images[:, 0, 10:18, 10:18], atol=1e-5)
    assert not torch.allclose(out[:, 0, 0], images[:, 0, 0])  # but the borders moved in


def test_augment_distorts_real_digits_mildly(digits):
    images, _ = digits
    torch.manual_seed(0)
    out = data.augment(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    change = (out - images).abs().mean((1, 2, 3))
    assert (change > 0.01).float().mean() > 0.9 and change.max() < 0.6  # moved, still a digit-sized change


def test_augment_values_stay_in_range_and_zero_ranges_change_nothing(digits):
    images, _ = digits
    out = data.augment(images, max_shift=3, max_rotation=20, max_scale=0.2)
    assert out.min() >= -1 and out.max() <= 1
    assert torch.allclose(data.augment(images, 0, 0, 0), images, atol=1e-5)


def centroids(images):
    """Centre of mass (x, y) of each image's ink, images in [-1, 1]."""
    mass = (images[:, 0] + 1).clamp_min(0)
    grid = torch.arange(images.shape[-1], dtype=images.dtype)
    total = mass.sum((1, 2))
    return torch.stack([(mass.sum(1) * grid).sum(1) / total, (mass.sum(2) * grid).sum(1) / total], 1)


def test_augment_shifts_within_the_range():
    blob = torch.full((500, 1, 28, 28), -1.0)
    blob[:, :, 12:16, 12:16] = 1.0
    torch.manual_seed(0)
    moved = centroids(data.augment(blob, max_shift=2, max_rotation=0, max_scale=0)) - centroids(blob)
    assert moved.abs().max() <= 2 + 1e-4
    assert moved.abs().max() > 1.8 and moved.abs().mean() > 0.7  # the whole range is used, both ways
    assert (moved > 0.5).any() and (moved < -0.5).any()


def test_augment_rotates_and_zooms_within_the_range():
    bar = torch.full((500, 1, 28, 28), -1.0)
    bar[:, :, 13:15, 4:24] = 1.0  # a horizontal bar through the centre
    torch.manual_seed(0)
    out = data.augment(bar, max_shift=0, max_rotation=10, max_scale=0.1)
    mass = (out[:, 0] + 1) / 2
    y, x = torch.meshgrid(torch.arange(28.) - 13.5, torch.arange(28.) - 13.5, indexing='ij')
    total = mass.sum((1, 2))
    cxx, cyy, cxy = [(mass * t).sum((1, 2)) / total for t in (x * x, y * y, x * y)]
    angle = torch.rad2deg(0.5 * torch.atan2(2 * cxy, cxx - cyy))  # orientation of the ink
    assert angle.abs().max() <= 10.5 and angle.abs().max() > 8
    zoom = (total / ((bar[:, 0] + 1) / 2).sum((1, 2))).sqrt()  # ink area grows with the square of the zoom
    assert zoom.min() >= 0.9 - 0.02 and zoom.max() <= 1.1 + 0.02
    assert zoom.min() < 0.93 and zoom.max() > 1.07


def test_augment_draws_from_the_global_generator(digits):
    images, _ = digits
    torch.manual_seed(5)
    first = data.augment(images)
    torch.manual_seed(5)
    assert torch.equal(data.augment(images), first)


def library_warp(images, max_shift=2.0, max_rotation=10.0, max_scale=0.1, background=-1.0):
    """The reference: the distortion data.augment draws (same parameters, drawn in the same order
    from the global generator), done by torch's affine_grid + grid_sample."""
    n, c, h, w = images.shape

    def uniform(*shape, bound):
        return (torch.rand(*shape, dtype=images.dtype) * 2 - 1) * bound

    angle = uniform(n, bound=math.radians(max_rotation))
    zoom = 1 + uniform(n, bound=max_scale)
    shift_x, shift_y = uniform(2, n, bound=max_shift)
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    # output point (x, y) in pixels from the centre reads the source point R (x - shift_x, y - shift_y),
    # in grid_sample's units: the image spans -1..1, a pixel is 2/w wide and 2/h high
    theta = torch.stack([
        torch.stack([cos, sin * h / w, -(cos * shift_x + sin * shift_y) * 2 / w], 1),
        torch.stack([-sin * w / h, cos, (sin * shift_x - cos * shift_y) * 2 / h], 1)], 1)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    return F.grid_sample(images - background, grid, align_corners=False) + background  # 0 outside: background


@pytest.mark.parametrize('shape, ranges', [((256, 1, 28, 28), ()), ((64, 3, 20, 28), (3, 20, 0.2))],
                         ids=['mnist', 'wide-rgb-larger-ranges'])
def test_augment_equals_torchs_affine_grid_and_grid_sample(digits, shape, ranges):
    images = digits[0] if shape[0] == 256 else torch.rand(shape) * 2 - 1
    torch.manual_seed(1)
    ours = data.augment(images, *ranges)
    torch.manual_seed(1)
    assert torch.allclose(ours, library_warp(images, *ranges), atol=2e-5)


def test_add_styles_keeps_shape_dtype_range_and_labels_and_is_seeded(digits):
    images, labels = digits
    kept = labels.clone()
    torch.manual_seed(3)
    out = data.add_styles(images, labels, share=1.0)
    torch.manual_seed(3)
    assert torch.equal(data.add_styles(images, labels, share=1.0), out)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    assert torch.equal(labels, kept)
    assert not torch.equal(out, images)


def test_ink_box_bounds_the_ink():
    images = torch.full((2, 1, 28, 28), -1.0)
    images[0, 0, 5:9, 10:20] = 1
    left, top, right, bottom = data.ink_box(images)
    assert (left[0], top[0], right[0], bottom[0]) == (10, 5, 19, 8)
    assert (left[1], top[1], right[1], bottom[1]) == (0, 0, 27, 27)  # no ink: the whole frame


def test_add_styles_changes_only_zeros_ones_fours_and_sevens(digits):
    images, labels = digits
    torch.manual_seed(0)
    out = data.add_styles(images, labels, share=1.0)
    changed = (out - images).abs().amax((1, 2, 3)) > 0.5
    assert not changed[(labels != 0) & (labels != 1) & (labels != 4) & (labels != 7)].any()
    styled = (labels == 0) | (labels == 1) | (labels == 7)
    assert changed[styled].float().mean() > 0.95 and changed[labels == 4].float().mean() > 0.8
    assert (out[labels == 4] <= images[labels == 4] + 1e-6).all()  # a four is only erased, never drawn on
    assert (out[styled] >= images[styled] - 1e-6).all()  # ink is only added, never erased
    added = (out[styled] > 0).sum((1, 2, 3)) - (images[styled] > 0).sum((1, 2, 3))  # ink pixels
    assert added.float().mean() > 8  # a stroke, not a speck
    assert torch.equal(data.add_styles(images, labels, share=0.0), images)


def test_draw_segments_draws_a_line_of_the_given_width():
    blank = torch.full((1, 1, 28, 28), -1.0)
    line = data.draw_segments(blank, torch.tensor([[4.0, 14.0]]), torch.tensor([[23.0, 14.0]]),
                              torch.tensor([3.0]))
    assert (line[0, 0, 13:16, 4:24] > 0.99).all() and (line[0, 0, :12] == -1).all()
    assert (line[0, 0, 17:] == -1).all()


def test_non_digits_are_seeded_inked_drawings_in_range():
    """The synthetic non-digits: normalised like MNIST, every one inked and spread over MNIST's 20x20 box,
    the same for the same seed and others for another."""
    images = data.non_digits(40, torch.Generator().manual_seed(1))
    assert images.shape == (40, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() <= 1
    ink = images[:, 0] > 0
    assert (ink.flatten(1).sum(1) >= 15).all()
    rows, cols = ink.any(2), ink.any(1)
    span = lambda hit: 28 - hit.int().argmax(1) - hit.flip(1).int().argmax(1)
    assert (torch.maximum(span(rows), span(cols)) >= 17).all()  # the longer side fills the 20x20 box
    assert torch.equal(images, data.non_digits(40, torch.Generator().manual_seed(1)))
    assert not torch.equal(images, data.non_digits(40, torch.Generator().manual_seed(2)))


def test_joined_pairs_are_two_digits_side_by_side_in_one_box():
    """Two 1s (upright bars) written as a pair are two bars with background between them, never one thick
    bar, normalised like MNIST; seeded like `non_digits`."""
    one = torch.full((1, 1, 28, 28), -1.0)
    one[0, 0, 4:24, 13:16] = 1.0
    pairs = data.joined_pairs(one.repeat(3, 1, 1, 1), 20, torch.Generator().manual_seed(1))
    assert pairs.shape == (20, 1, 28, 28) and pairs.min() == -1 and pairs.max() <= 1
    columns = (pairs[:, 0] > 0).any(1).int()
    assert ((columns.diff(dim=1) == 1).sum(1) == 2).all(), 'not two bars apart'
    assert torch.equal(pairs, data.joined_pairs(one.repeat(3, 1, 1, 1), 20, torch.Generator().manual_seed(1)))
