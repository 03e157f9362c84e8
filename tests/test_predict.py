"""predict.py: MNIST-style preparation of real images, the shipped checkpoint, and the CLI."""
import errno
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import predict
from files import ROOT
from support import png_header
from data import normalize
import preprocess
from predict import load_model
from preprocess import BlankImageError, to_mnist

SEVEN = [(60, 50), (150, 50), (95, 170)]        # a '7' drawn in the top-left of a 280x280 page
ONE = [(230, 140), (230, 260)]                  # a '1' in the bottom-right
ORIENTATION = 0x0112                            # the EXIF tag


def draw(strokes, size=(280, 280), width=18, ink=0, paper=255):
    """Dark ink on light paper, each stroke a polyline with round caps and joints."""
    image = Image.new('L', size, paper)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill=ink, width=width, joint='curve')
        for x, y in stroke:
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=ink)
    return image


def centre_of_mass(image):
    image = image.astype(np.float64)
    index = np.arange(28)
    return (image.sum(1) @ index / image.sum(), image.sum(0) @ index / image.sum())


def ink_box(image):
    return preprocess.cropped(image).shape


@pytest.fixture(scope='module')
def model():
    return load_model()


@pytest.fixture(scope='module')
def mnist_test(mnist):
    return mnist['test']


# ---------------------------------------------------------------- to_mnist

@pytest.mark.parametrize('strokes', [[SEVEN], [ONE]], ids=['seven-top-left', 'one-bottom-right'])
def test_off_centre_digit_ends_centred_and_20px(strokes):
    image = to_mnist(draw(strokes))
    assert image.shape == (28, 28) and image.dtype == np.uint8
    row, col = centre_of_mass(image)
    assert abs(row - preprocess.CENTRE) <= 0.5 and abs(col - preprocess.CENTRE) <= 0.5  # whole-pixel shifts
    assert max(ink_box(image)) == 20


def test_mnist_centre_is_where_mnist_digits_have_it(mnist_test):
    rows, cols = zip(*(centre_of_mass(x) for x in mnist_test[0][:500].numpy()))
    assert abs(np.mean(rows) - preprocess.CENTRE) < 0.1 and abs(np.mean(cols) - preprocess.CENTRE) < 0.1


@pytest.mark.parametrize('size, expected', [((60, 180), (20, 7)), ((200, 40), (4, 20))], ids=['tall', 'wide'])
def test_aspect_ratio_kept(size, expected):
    width, height = size
    image = Image.new('L', (280, 280), 255)
    ImageDraw.Draw(image).rectangle((30, 40, 30 + width - 1, 40 + height - 1), fill=0)
    height_px, width_px = ink_box(to_mnist(image))
    assert abs(height_px - expected[0]) <= 1 and abs(width_px - expected[1]) <= 1


@pytest.mark.parametrize('width', [4, 12, 40])
def test_thin_and_thick_strokes(model, width):
    """The same '7' with a fine pen and with a marker: both scaled into the same box, both read as 7."""
    image = to_mnist(draw([SEVEN], width=width))
    assert max(ink_box(image)) == 20 and image.max() > 200
    assert model.predict(draw([SEVEN], width=width)).digit == 7


def test_light_and_dark_backgrounds_give_the_same_input():
    dark_on_light = draw([SEVEN])
    light_on_dark = draw([SEVEN], ink=255, paper=0)
    grey_paper = draw([SEVEN], ink=60, paper=200)   # a photo: contrast and background level differ
    expected = to_mnist(light_on_dark)
    assert np.array_equal(to_mnist(dark_on_light), expected)
    assert np.abs(to_mnist(grey_paper).astype(int) - expected).max() <= 2


def test_transparent_background_and_arrays():
    expected = to_mnist(draw([SEVEN]))
    black_ink = Image.new('RGBA', (280, 280), (0, 0, 0, 0))  # transparent pixels are black too: not all ink
    black_ink.paste((0, 0, 0, 255), mask=draw([SEVEN], ink=255, paper=0))
    assert np.array_equal(to_mnist(black_ink), expected)
    floats = np.asarray(draw([SEVEN]), dtype=np.float32) / 255
    assert np.array_equal(to_mnist(floats), expected)
    assert np.array_equal(to_mnist(np.asarray(black_ink)), expected)   # RGBA, as image libraries load it
    paper = np.asarray(draw([SEVEN]), dtype=np.float64)[..., None] / 255
    blue_ink = paper * 255 + (1 - paper) * np.array([20, 40, 160])   # on white paper: RGB floats 0..255
    assert np.abs(to_mnist(blue_ink).astype(int) - expected).max() <= 2


@pytest.mark.parametrize('image', [
    Image.new('L', (280, 280), 255), Image.new('L', (280, 280), 0), Image.new('RGB', (50, 80), (120, 130, 140)),
    np.zeros((28, 28), np.uint8), Image.new('RGBA', (64, 64), (0, 0, 0, 0)),
    draw([SEVEN], ink=240, paper=250),  # contrast too faint to be ink
], ids=['white', 'black', 'grey-rgb', 'blank-28x28', 'transparent', 'faint'])
def test_blank_image_raises(image):
    with pytest.raises(BlankImageError, match='no ink'):
        to_mnist(image)


def test_mnist_image_passes_through_unchanged(model, mnist_test):
    images = mnist_test[0][:200].numpy()
    for image in images:
        assert np.array_equal(to_mnist(image), image)
    inverted = Image.fromarray(255 - images[0])  # black on white 28x28: only inverted back
    assert np.array_equal(to_mnist(inverted), images[0])
    # what the model is given: exactly the training normalisation (data.normalize) of these images
    predictions = model.predict_batch(list(images[:20]))
    expected = (model.network.logits(normalize(mnist_test[0][:20])).double() / model.temperature).softmax(1)
    assert [p.probabilities for p in predictions] == expected.tolist()


def test_drawings_of_any_size_and_place_read_like_mnist(model, mnist_test):
    """MNIST digits redrawn as a person would: dark on a light 280x280 page, anywhere, at any size.
    Prepared by to_mnist they are read as well as the originals; a plain resize to 28x28 is not."""
    rng = np.random.default_rng(0)
    images, labels = mnist_test[0][:300].numpy(), mnist_test[1][:300].numpy()
    pages = []
    for digit in images:
        crop = Image.fromarray(255 - preprocess.cropped(digit))
        scale = rng.uniform(60, 200) / max(crop.size)
        crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.BICUBIC)
        page = Image.new('L', (280, 280), 255)
        page.paste(crop, (int(rng.integers(0, 281 - crop.width)), int(rng.integers(0, 281 - crop.height))))
        pages.append(page)
    original = np.mean([p.digit for p in model.predict_batch(list(images))] == labels)
    prepared = np.mean([p.digit for p in model.predict_batch(pages)] == labels)
    naive = normalize(torch.from_numpy(255 - np.stack([np.asarray(p.resize((28, 28), Image.LANCZOS)) for p in pages])))
    plain_resize = (model.network(naive).argmax(1).numpy() == labels).mean()
    print(f'accuracy on 300 test digits: as MNIST {original:.3f}, redrawn and prepared {prepared:.3f}, '
          f'redrawn and plainly resized {plain_resize:.3f}')
    assert prepared >= original - 0.02, (prepared, original)
    assert plain_resize < prepared - 0.2, (plain_resize, prepared)


def test_exif_rotated_photo_is_read_upright(tmp_path, model):
    """A camera stores a photo as its sensor saw it and records the turn (EXIF Orientation 6:
    rotate 90 degrees clockwise to view); a viewer shows it upright, and so must we."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    draw([SEVEN]).transpose(Image.ROTATE_90).save(tmp_path / 'sideways.jpg', exif=exif.tobytes(), quality=95)
    draw([SEVEN]).save(tmp_path / 'upright.jpg', quality=95)
    upright = to_mnist(tmp_path / 'upright.jpg').astype(int)
    assert np.abs(to_mnist(tmp_path / 'sideways.jpg').astype(int) - upright).mean() < 2
    assert model.predict(tmp_path / 'sideways.jpg').digit == 7


@pytest.mark.parametrize('mode, suffix', [('I;16', 'png'), ('I', 'tif'), ('F', 'tif')])
def test_16_bit_and_float_images_are_scaled_by_their_own_range(tmp_path, mode, suffix):
    """Ink at 10000 on paper at 50000: Pillow's convert('L') clips such values at 255, which
    would make the page one flat white."""
    levels = np.where(np.asarray(draw([SEVEN])) < 128, 10_000, 50_000)
    image = Image.fromarray(levels.astype({'I;16': np.uint16, 'I': np.int32, 'F': np.float32}[mode]))
    assert image.mode == mode
    image.save(tmp_path / f'deep.{suffix}')
    expected = to_mnist(draw([SEVEN]))
    assert np.array_equal(to_mnist(tmp_path / f'deep.{suffix}'), expected)
    assert np.array_equal(to_mnist(image), expected)


def test_large_images_are_shrunk_before_any_array_work(tmp_path, monkeypatch):
    """A 10000x10000 photo took 12.6 s and 3.7 GB as float arrays; shrunk first (JPEGs while
    decoding) it is a small image long before grayscale() makes an array of it."""
    page = draw([[(x * 10, y * 10) for x, y in SEVEN]], size=(3000, 2400), width=180)
    page.save(tmp_path / 'big.png')
    page.convert('RGB').save(tmp_path / 'big.jpg')
    expected = to_mnist(draw([SEVEN]))
    sizes, real = [], preprocess.grayscale
    monkeypatch.setattr(preprocess, 'grayscale', lambda image: sizes.append(image.size) or real(image))
    for source in (tmp_path / 'big.png', tmp_path / 'big.jpg', page, np.asarray(page)):
        assert np.abs(to_mnist(source).astype(int) - expected).mean() < 6
    assert len(sizes) == 4 and all(max(size) <= preprocess.LARGEST_SIDE for size in sizes), sizes
    assert page.size == (3000, 2400)  # the caller's image is left as it was


def test_image_errors_name_the_file_and_what_to_do(tmp_path):
    folder = tmp_path / 'digits.png'
    folder.mkdir()
    (tmp_path / 'huge.png').write_bytes(png_header(20_000, 20_000))
    draw([SEVEN]).save(tmp_path / 'cut.png')
    (tmp_path / 'cut.png').write_bytes((tmp_path / 'cut.png').read_bytes()[:600])
    for name, message in [('digits.png', 'is a folder, not an image file'),
                          ('huge.png', 'is too large to read safely, more than'),
                          ('cut.png', 'not an image that can be read (image file is truncated); save it again')]:
        with pytest.raises(ValueError) as error:
            to_mnist(tmp_path / name)
        assert str(error.value).startswith(f'{tmp_path / name}: {message}'), str(error.value)


def test_unreadable_image_file_is_reported(tmp_path, monkeypatch):
    """Tests run as root, which ignores permission bits: the operating system's answer for a
    file in a folder this user may not enter (stat fails with EACCES) is stood in for."""
    path = tmp_path / 'locked' / 'seven.png'
    real_stat = Path.stat

    def stat(self, **kwargs):
        if self == path:
            raise PermissionError(errno.EACCES, 'Permission denied', str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, 'stat', stat)
    with pytest.raises(ValueError, match=rf'^{path}: permission denied; make it readable'):
        to_mnist(path)


@pytest.mark.slow
def test_cli_goes_on_after_an_image_it_cannot_read(tmp_path):
    """A huge image (Pillow's DecompressionBombError) or a folder among the files: the images
    before and after are still classified, and the exit status says something failed."""
    draw([SEVEN]).save(tmp_path / 'seven.png')
    (tmp_path / 'huge.png').write_bytes(png_header(20_000, 20_000))
    (tmp_path / 'folder').mkdir()
    result = run_cli(tmp_path / 'seven.png', tmp_path / 'huge.png', tmp_path / 'folder', 'docs/sample_digit.png')
    assert result.returncode == 1
    assert [line.split(': ')[1][0] for line in result.stdout.splitlines()] == ['7', '3']
    errors = result.stderr.splitlines()
    assert len(errors) == 2, errors
    assert errors[0].startswith(f'error: {tmp_path / "huge.png"}: is too large to read safely, more than')
    assert errors[1].startswith(f'error: {tmp_path / "folder"}: is a folder, not an image file')


# ---------------------------------------------------------------- the model

def test_predict_returns_digit_confidence_and_ten_probabilities(model):
    prediction = model.predict(draw([ONE]))
    assert prediction.digit == 1
    assert len(prediction.probabilities) == 10 and abs(sum(prediction.probabilities) - 1) < 1e-5
    assert prediction.confidence == max(prediction.probabilities)
    assert prediction.top(3)[0] == (1, prediction.confidence) and len(prediction.top(3)) == 3
    assert np.array_equal(prediction.model_input, to_mnist(draw([ONE])))
    batch = model.predict_batch([draw([SEVEN]), draw([ONE]), ROOT / 'docs' / 'sample_digit.png'])
    assert [p.digit for p in batch] == [7, 1, 3]


def test_load_model_reports_its_checkpoint(model):
    saved = torch.load(model.checkpoint, weights_only=True)
    assert model.checkpoint.name == Path(saved['best']['path']).name  # stored relative to its folder
    assert model.val_accuracy == saved['metrics']['val_acc'] and model.epoch == saved['epoch']
    assert f'val acc {100 * model.val_accuracy:.2f}%' in model.describe() and model.checkpoint.name in model.describe()


def test_checkpoint_saved_on_a_gpu_loads_on_a_cpu(tmp_path, model):
    """torch.save records each tensor's device; load_model maps a GPU run's checkpoint onto the CPU."""
    saved = torch.load(model.checkpoint, weights_only=True)
    with mock.patch.object(torch.serialization, 'location_tag', lambda storage: 'cuda:0'):
        torch.save(saved, tmp_path / 'gpu.pth')  # what a training run on a GPU writes
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA'):  # the plain torch.load a user might try
            torch.load(tmp_path / 'gpu.pth', weights_only=True)
    assert load_model(tmp_path / 'gpu.pth').predict(ROOT / 'docs' / 'sample_digit.png').digit == 3


# ---------------------------------------------------------------- command line

def run_cli(*args):
    result = subprocess.run([sys.executable, 'predict.py', *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert 'Traceback' not in result.stderr, result.stderr
    return result


@pytest.mark.slow
def test_cli_prints_one_line_per_file_and_names_each_problem(tmp_path):
    draw([SEVEN]).save(tmp_path / 'seven.png')
    (tmp_path / 'notes.png').write_text('not an image')
    Image.new('L', (100, 100), 255).save(tmp_path / 'blank.png')
    result = run_cli(tmp_path / 'seven.png', tmp_path / 'missing.png', tmp_path / 'notes.png',
                     tmp_path / 'blank.png', 'docs/sample_digit.png', '--top', '3')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf'{re.escape(str(tmp_path / "seven.png"))}: 7 \([<>]?\d+\.\d%, sure\), \d \([<>]?\d+\.\d%\), \d \([<>]?\d+\.\d%\)', lines[0])
    assert lines[1].startswith('docs/sample_digit.png: 3 (')
    errors = result.stderr.splitlines()
    assert errors == [f'error: {tmp_path / "missing.png"}: no such file',
                      f'error: {tmp_path / "notes.png"}: not an image that can be read ' + errors[1].split('read ', 1)[1],
                      f'error: {tmp_path / "blank.png"}: ' + errors[2].split(': ', 2)[2]]
    assert 'no ink' in errors[2]


@pytest.mark.slow
def test_cli_success_exit_code():
    result = run_cli('docs/sample_digit.png')
    assert result.returncode == 0 and re.fullmatch(r'docs/sample_digit.png: 3 \([<>]?\d+\.\d%, sure\)\n', result.stdout)


@pytest.mark.slow
def test_cli_reads_a_picture_of_a_number(tmp_path):
    """A number written in dark ink on light paper, as a scan or a photo of a note would be."""
    from support import DIGITS, resized
    strokes = [stroke for i, d in enumerate([2, 0, 2, 6]) for stroke in resized(DIGITS[d], 110, (80 + 120 * i, 140))]
    draw(strokes, size=(560, 280), width=14).save(tmp_path / 'note.png')
    result = run_cli(tmp_path / 'note.png')
    assert result.returncode == 0
    assert re.fullmatch(rf'{re.escape(str(tmp_path / "note.png"))}: 2026 \([<>]?\d+\.\d%, sure\)\n', result.stdout)


def test_cli_checkpoint_errors(tmp_path, model, capsys):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'\x00' * 100)
    saved = torch.load(model.checkpoint, weights_only=True)
    saved.pop('checksum')  # these files stand for other versions' checkpoints, not damaged ones
    other = tmp_path / 'other.pth'
    torch.save({**saved, 'model': {**saved['model'], 'first_layer.weight': torch.zeros(64, 784)}}, other)
    unknown = tmp_path / 'unknown.pth'
    torch.save({**saved, 'architecture': {'name': 'ConvNet', 'config': {}}}, unknown)
    for checkpoint, message in [(tmp_path / 'nope.pth', 'does not exist; train one with `python train.py`'),
                                (corrupt, 'cannot be read'),
                                (other, 'does not fit the models this version can build'),
                                (unknown, "unknown architecture 'ConvNet'")]:
        assert predict.main(['docs/sample_digit.png', '--checkpoint', str(checkpoint)]) == 1
        out, err = capsys.readouterr()
        assert out == '' and err.startswith(f'error: checkpoint {checkpoint} ') and message in err, err


def test_no_checkpoint_says_how_to_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, 'CHECKPOINT_DIRS', (tmp_path / 'shipped', tmp_path))
    assert predict.main(['docs/sample_digit.png']) == 1
    error = capsys.readouterr().err
    assert error.startswith(f'error: no trained model: {tmp_path / "shipped"} and {tmp_path} hold no checkpoint')
    assert '`python train.py`' in error and '--checkpoint' in error


def test_predict_applies_the_checkpoint_temperature(model):
    """probabilities = softmax(logits / T) with the checkpoint's T; the digit never changes with T."""
    image = to_mnist(draw([SEVEN]))
    logits = model.network.logits(normalize(torch.from_numpy(image[None]))).double()
    calibrated = model.predict(image)
    assert model.temperature != 1.0  # the shipped model is calibrated
    assert calibrated.probabilities == pytest.approx((logits / model.temperature).softmax(1)[0].tolist(), abs=1e-9)
    assert calibrated.energy == pytest.approx(-model.temperature * torch.logsumexp(logits / model.temperature, 1).item())
    raw = predict.DigitClassifier(model.network, model.checkpoint, 1, 0.0, 0.0, model.device).predict(image)
    assert raw.probabilities == pytest.approx(logits.softmax(1)[0].tolist(), abs=1e-9) and raw.digit == calibrated.digit
    assert raw.confidence != pytest.approx(calibrated.confidence)


def test_verdict_rules():
    assert predict.verdict(0.95) == predict.SURE
    assert predict.verdict(predict.SURE_PROBABILITY) == predict.SURE
    assert predict.verdict(0.79) == predict.UNSURE
    assert predict.verdict(0.999, not_a_digit=True) == predict.NOT_A_DIGIT


def test_prediction_names_the_runner_up_and_judges_the_input(model):
    image = to_mnist(draw([SEVEN]))
    prediction = model.predict(image)
    (first, _), (second, _) = prediction.top(2)
    assert (prediction.digit, prediction.runner_up) == (first, second) and prediction.verdict == predict.SURE
    wide = np.zeros((28, 28), np.uint8)
    wide[10:18, 1:27] = 255  # ink 26 px wide and 8 tall: not one digit
    assert predict.side_by_side(wide) and model.predict(wide).verdict == predict.NOT_A_DIGIT
    pair = np.zeros((28, 28), np.uint8)
    pair[8:22, 3:12] = pair[8:22, 14:24] = 255  # 21 wide, 14 tall, an empty column between: two things
    assert predict.side_by_side(pair) and not predict.side_by_side(pair[:, :14])
    joined = pair.copy()
    joined[8, 12:14] = 255  # the same joined up: as wide as a wide 5
    assert not predict.side_by_side(joined)
    strict = predict.DigitClassifier(model.network, model.checkpoint, 1, 0.0, 0.0, model.device, model.temperature,
                                     energy_limit=prediction.energy - 1)
    assert strict.predict(image).verdict == predict.NOT_A_DIGIT  # an energy above the checkpoint's limit


@pytest.mark.parametrize('p, text', [(0.5, '50.0%'), (0.9994, '>99.9%'), (1.0, '100.0%'), (0.0004, '<0.1%'),
                                     (0.0, '0.0%'), (0.998, '99.8%')])
def test_percent_never_rounds_to_a_certainty_the_model_did_not_state(p, text):
    assert predict.percent(p) == text
