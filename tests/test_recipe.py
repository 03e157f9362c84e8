"""The improved recipe: batch augmentation, learning-rate schedules, presets, and short real runs."""
import math
from dataclasses import replace

import pytest
import torch

import checkpoint
import data
import nn
import train
from conftest import train_interrupted

TINY = dict(val_size=500, progress=False)


@pytest.fixture
def short_test_split(splits):
    """TINY's splits, evaluated on the first 2,000 test images only: the CNN's evaluation dominates a short run."""
    loaded = splits(TINY['val_size'])
    return loaded | {'test': tuple(t[:2000] for t in loaded['test'])}


@pytest.fixture(scope='module')
def digits(mnist):
    return data.normalize(mnist['train'][0][:256]), mnist['train'][1][:256]


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


@pytest.mark.parametrize('schedule', train.SCHEDULES)
def test_learning_rate_schedules(schedule):
    total = 1000
    rates = torch.tensor([train.learning_rate(schedule, 0.01, step, total) for step in range(total)],
                         dtype=torch.float64)
    assert rates.max() <= 0.01 + 1e-12 and rates.min() >= 0
    if schedule == 'constant':
        assert (rates == 0.01).all()
    elif schedule == 'cosine':
        assert rates[0] == 0.01 and rates[-1] < 1e-6 and (rates.diff() < 0).all()
        assert math.isclose(rates[total // 2], 0.005, rel_tol=1e-9)
    else:
        peak = round(train.WARMUP * total)
        assert math.isclose(rates[0], 0.01 / 25) and rates[peak] == 0.01 and rates[-1] < 1e-6
        assert (rates[:peak + 1].diff() > 0).all() and (rates[peak:].diff() < 0).all()


def test_presets_fill_in_a_recipe_and_explicit_options_win():
    config = train.make_config(preset='cnn-best', epochs=2)
    assert config.model == 'CNN' and config.epochs == 2 and config.augment
    assert config.schedule == train.PRESETS['cnn-best']['schedule']
    assert train.make_config() == train.Config()
    # the original project's recipe is the default but for the learning rate, which it kept constant
    assert replace(train.make_config(preset='original'), preset=None) == train.Config(schedule='constant')
    cli = train.make_config(**train.parse_args(['--preset', 'mlp-best', '--lr', '0.01']))
    assert cli.lr == 0.01 and cli.preset == 'mlp-best'
    assert cli.batch_size == train.PRESETS['mlp-best']['batch_size']
    assert train.make_config(**train.parse_args([])) == train.Config()  # without a preset, the default recipe
    with pytest.raises(ValueError, match="unknown preset 'best'"):
        train.make_config(preset='best')


def test_recipe_options_are_checked():
    with pytest.raises(ValueError, match='Net has no dropout layer: use --model CNN or --dropout 0.0'):
        train.check_config(train.Config(dropout=0.5))
    with pytest.raises(ValueError, match=r'--label-smoothing 1.5: must be in \[0, 1\)'):
        train.check_config(train.Config(label_smoothing=1.5))


def test_resume_of_a_cnn_with_augmentation_dropout_and_schedule_is_exact(tmp_path, short_test_split):
    """Ctrl-C in epoch 2, then resume: batch norm statistics, dropout masks, distortions and
    the per-step learning rate all come out as in the uninterrupted run."""
    recipe = dict(preset='cnn-best', train_subset=256, batch_size=64, epochs=2, data=short_test_split, **TINY)
    full = train.train(checkpoint_dir=tmp_path / 'full', **recipe)
    train_interrupted(2, checkpoint_dir=tmp_path / 'split', **recipe)
    resumed = train.train(checkpoint_dir=tmp_path / 'split', resume=str(tmp_path / 'split' / 'last.pth'), **recipe)
    a = checkpoint.load(tmp_path / 'full' / 'last.pth')
    b = checkpoint.load(tmp_path / 'split' / 'last.pth')
    assert a['config']['model'] == 'CNN' and a['architecture']['name'] == 'CNN'
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
    assert 'norm1.running_var' in a['model']
    assert full['history'][['epoch', 'lr', 'train_loss', 'val_acc']].equals(
        resumed['history'][['epoch', 'lr', 'train_loss', 'val_acc']])


def test_short_cnn_run_on_real_mnist_beats_a_floor(tmp_path, short_test_split):
    """Two epochs of the CNN on 8,000 images reach 98.0%. The floor, 97.5%, is above what the
    same run reaches with conv layers that never learn (97.2%: random convolutions already make
    good features, which is why every layer's gradient is also checked against autograd)."""
    result = train.train(preset='cnn-best', train_subset=8000, batch_size=32, epochs=2, augment=False,
                         checkpoint_dir=tmp_path, data=short_test_split, **TINY)
    assert result['test'].accuracy >= 0.975
    assert result['history']['lr'].iloc[0] < train.PRESETS['cnn-best']['lr']  # one-cycle starts low
    assert checkpoint.load(result['best_checkpoint'])['config']['model'] == 'CNN'
