"""The drawn-digits benchmark (evaluate.py --drawn) and the shared drawing functions of predict.py:
the renderer, strokes redrawn at MNIST's scale (holes kept whatever the brush), the draw-bigger hint."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
import metrics
import predict
import preprocess
from support import resized
from preprocess import TooSmallError, draw_strokes, strokes_to_mnist, to_mnist

# an 8 and a 0 as a mouse draws them, in canvas pixels (two loops; one loop)
EIGHT = [[(180, 70), (140, 50), (100, 75), (120, 120), (175, 160), (170, 215), (120, 225), (95, 190), (130, 140),
          (175, 95), (180, 70)]]
ZERO = [[(140, 50), (100, 70), (85, 140), (100, 210), (140, 232), (180, 210), (195, 140), (180, 70), (140, 50)]]


@pytest.fixture(scope='module')
def drawn():
    return evaluate.load_drawn()  # shipped with the repository


@pytest.fixture(scope='module')
def model():
    return predict.load_model()


# ---------------------------------------------------------------- renderer

def test_draw_strokes_is_deterministic_round_and_separate():
    strokes = [[(50, 60), (120, 60)], [(200, 200)]]  # a line, then a dot: nothing drawn between them
    image = draw_strokes(strokes, brush=20)
    assert image.mode == 'L' and image.size == (280, 280)
    assert draw_strokes(strokes, brush=20).tobytes() == image.tobytes()
    pixels = np.asarray(image)
    assert set(np.unique(pixels)) == {0, 255}                 # white ink on black
    assert pixels[60, 85] == 255 and pixels[60 + 12, 85] == 0  # 20 px wide
    assert pixels[60, 50 - 9] == 255 and pixels[60 - 8, 50 - 6] == 255  # round cap beyond the end
    assert pixels[60 - 9, 50 - 9] == 0                          # round, not square
    assert pixels[200, 200] == 255 and pixels[130, 160] == 0    # the dot; pen up between strokes
    assert abs(int((np.asarray(draw_strokes([[(140, 140)]], brush=40)) > 0).sum()) - np.pi * 20 ** 2) < 60


# ---------------------------------------------------------------- the drawn digits

def test_loader_halves(drawn):
    assert [len(drawn['dev']), len(drawn['test'])] == [600, 600]
    for half, (first, last) in {'dev': ('W01', 'W30'), 'test': ('W31', 'W60')}.items():
        writers = sorted({d['writer'] for d in drawn[half]})
        assert len(writers) == 30 and writers[0] == first and writers[-1] == last
    every = drawn['dev'] + drawn['test']
    assert sorted(np.bincount([d['label'] for d in every])) == [120] * 10  # 10 digits x 2 x 60 writers
    assert all(d['strokes'] and all(len(point) == 2 for s in d['strokes'] for point in s) for d in every)


def test_missing_file_says_how_to_restore_it(tmp_path):
    with pytest.raises(evaluate.DrawnDataError, match=r'git checkout -- drawn_digits/uji_digits\.json\.gz'):
        evaluate.load_drawn(tmp_path / 'none.json.gz')
    assert evaluate.main(['--drawn', str(tmp_path / 'none.json.gz')]) == 1


def test_the_shipped_file_is_checked_against_its_checksum(monkeypatch, tmp_path):
    damaged = tmp_path / 'uji_digits.json.gz'
    content = bytearray(evaluate.DRAWN_FILE.read_bytes())
    content[len(content) // 2] ^= 1
    damaged.write_bytes(bytes(content))
    monkeypatch.setattr(evaluate, 'DRAWN_FILE', damaged)
    with pytest.raises(evaluate.DrawnDataError, match='checksum mismatch'):
        evaluate.load_drawn(damaged)


def test_on_canvas_scales_any_tablet_to_the_same_size(drawn):
    low_res = next(d for d in drawn['dev'] if d['writer'] == 'W01')   # 100 units/mm
    high_res = next(d for d in drawn['test'] if d['writer'] == 'W40')  # 152 units/mm
    for digit in (low_res, high_res):
        points = np.concatenate(evaluate.on_canvas(digit['strokes'], size=60))
        extent = points.max(0) - points.min(0)
        assert abs(extent.max() - 60) <= 1 and points.dtype.kind == 'i'
        assert np.all(np.abs((points.max(0) + points.min(0)) / 2 - 140) <= 1)  # centred
        raw = np.concatenate([np.asarray(s) for s in digit['strokes']])
        raw_extent = raw.max(0) - raw.min(0)
        assert abs(extent[0] / extent[1] - raw_extent[0] / raw_extent[1]) < 0.05  # aspect kept


def test_shipped_cnn_reads_the_dev_half_as_the_app_does(model, drawn):
    """A whole-pipeline check (orientation, scaling, centring): well above chance, near the README's number."""
    predictions = evaluate.read_drawn(model, drawn['dev'])
    result = metrics.evaluation_of(predictions, [d['label'] for d in drawn['dev']])
    assert result.accuracy >= 0.97
    assert metrics.per_class_accuracy(result).samples.tolist() == [60] * 10


def test_numbers_read_through_the_pipeline_asked_for(capsys):
    """--pipeline image with --numbers reads only the pictures (and times only them)."""
    assert evaluate.main(['--numbers', '1', '--pipeline', 'image', '--brush', '3']) == 0
    out = capsys.readouterr().out
    assert 'pictures drawn with a 3-px pen' in out
    assert out.count('\n  image (') == 2 and '\n  strokes (' not in out
    assert re.search(r'one thread\): image \d+ ms\n', out)


@pytest.mark.slow
def test_cli_prints_both_halves_and_saves_the_mistakes(tmp_path, capsys):
    sheet = tmp_path / 'mistakes.png'
    assert evaluate.main(['--drawn', '--limit', '30', '--pipeline', 'image', '--brush', '40', '--size', '40',
                          '--sheet', str(sheet)]) == 0
    out = capsys.readouterr().out
    assert 'image drawn with a 40-px brush' in out and 'digits 40 px on the 280-px canvas' in out
    for half, writers in (('dev', 'W01-W30'), ('test', 'W31-W60')):
        line = next(line for line in out.splitlines() if line.startswith(f'{half} '))
        assert line.startswith(f'{half} (writers {writers}): ') and ' of 30 (' in line
    assert out.count('per digit: 0 ') == 2 and out.count('most confused: ') == 2
    assert out.count('  ECE (15 bins) ') == 2 and out.count('  shown as: sure ') == 2
    assert 'not one digit (30 of each kind, seed 0):' in out
    assert all(f'  {kind}: confident digit ' in out for kind in evaluate.NEGATIVE_KINDS)
    assert re.search(r'unfinished drawings \(the first strokes of the 255 multi-stroke digits, 256 in all\), read as '
                     r'the pen lifts: a sure wrong digit \d+\.\d%, a sure right one \d+\.\d%', out)
    assert Image.open(sheet).size[0] > 0


@pytest.mark.slow
def test_calibration_cli_meets_the_ece_target_and_saves_the_diagram(tmp_path, capsys):
    """The target for the shipped models: ECE <= 1.5% on MNIST test once calibrated."""
    figure = tmp_path / 'plots' / 'reliability.png'
    assert evaluate.main(['--calibration', '--figure', str(figure)]) == 0
    out = capsys.readouterr().out
    before, after = (float(re.search(rf'{name} \(T = [^)]*\): ECE \(15 bins\) ([\d.]+)%', out)[1])
                     for name in ('before', 'after'))
    assert after <= 1.5 < before  # label smoothing left the shipped CNN under-confident; T fixed that
    assert Image.open(figure).size[0] > 0 and f'reliability diagram saved to {figure}' in out


@pytest.mark.slow
def test_shipped_cnn_is_calibrated_and_honest_on_drawings(model, drawn):
    """Measured on the dev half and on evaluate.negatives: ECE <= 4% (the target; 0.9% measured),
    >= 99% of the drawn digits shown as digits (99.8%), the sure ones right >= 98.5% (99.2%), "12"-style
    pairs shown as a confident digit < 5% (none). Scribbles: 46.5% are still shown as a confident digit; the
    issue wants far fewer, which the models' own scores cannot give (see the README): this only guards
    against it getting worse."""
    predictions = evaluate.read_drawn(model, drawn['dev'])
    labels = [d['label'] for d in drawn['dev']]
    probabilities = torch.tensor([p.probabilities for p in predictions])
    assert metrics.expected_calibration_error(probabilities, labels) <= 0.04
    shares = evaluate.verdict_shares(predictions)
    assert shares[predict.NOT_A_DIGIT] <= 0.01
    sure = [p.digit == label for p, label in zip(predictions, labels) if p.verdict == predict.SURE]
    assert sum(sure) / len(sure) >= 0.985
    kinds = evaluate.negatives(drawn['dev'], count=200, seed=0)
    confident = {kind: evaluate.verdict_shares(model.predict_batch([strokes_to_mnist(s) for s in kinds[kind]]))
                 [predict.SURE] for kind in ('pair', 'scribble')}
    assert confident['pair'] < 0.05 and confident['scribble'] < 0.5


@pytest.mark.parametrize('args, message', [
    (['--drawn', '--size', '5'], '--size must be between'), (['--drawn', '--width', '0'], '--width'),
    ([], 'say what to evaluate: --drawn'), (['--drawn', '--figure', 'r.png'], '--figure saves the reliability')])
def test_cli_rejects_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# ---------------------------------------------------------------- strokes at MNIST's scale

def holes(image):
    """How many areas of background the ink encloses (not connected to the border)."""
    from scipy import ndimage
    areas, count = ndimage.label(image < 64)
    return count - len(set(np.concatenate([areas[0], areas[-1], areas[:, 0], areas[:, -1]])) - {0})


@pytest.mark.parametrize('strokes, loops', [(EIGHT, 2), (ZERO, 1)], ids=['eight', 'zero'])
def test_small_thick_digit_keeps_its_holes(strokes, loops):
    """Drawn 30 px tall with the thickest brush, the brushed image has its loops filled; the strokes do not."""
    small = resized(strokes, 30)
    assert holes(strokes_to_mnist(small)) == loops
    assert holes(to_mnist(draw_strokes(small, brush=preprocess.BRUSH[1]))) == 0  # the failure this prevents
    assert holes(strokes_to_mnist(strokes)) == loops


def test_to_mnist_thins_a_thick_pen_on_a_small_digit():
    """An image file has no strokes: there to_mnist erodes strokes too thick for the digit's size, so an
    8 written 60 px tall with a 20-px pen keeps both loops; ink as thick as MNIST's passes through untouched."""
    assert holes(to_mnist(draw_strokes(resized(EIGHT, 60), brush=20))) == 2
    crop = cropped(draw_strokes(EIGHT, brush=14))
    assert preprocess.restroked(crop) is crop


def cropped(image):
    """An image's ink cropped to its bounding box, as floats (what preprocess.restroked takes)."""
    return preprocess.cropped(np.asarray(image, dtype=np.float64))


@pytest.mark.parametrize('brush', [1, 2, 4])
def test_to_mnist_thickens_a_fine_pen_to_mnist_strokes(brush):
    """A fine pen on a large digit (a scan, a screenshot) would shrink to faint hairlines: its lines come out
    as bright and as thick as MNIST's (2.0 to 3.24 px: its test digits' 5th to 95th percentile), loops kept."""
    model_input = to_mnist(draw_strokes(resized(EIGHT, 240), brush=brush, size=(300, 300)))
    assert model_input.max() == 255 and holes(model_input) == 2
    assert 2.0 <= preprocess.box_stroke_width(cropped(model_input)) <= 3.24


def test_fine_pen_pictures_are_read(model, drawn):
    """The dev half drawn with a 2-px pen, 182 px on the longer side, read as picture files are."""
    predictions = evaluate.read_drawn(model, drawn['dev'], 'image', brush=2)
    assert metrics.evaluation_of(predictions, [d['label'] for d in drawn['dev']]).accuracy >= 0.97


def test_strokes_to_mnist_is_the_same_at_any_size_and_like_mnist():
    big, small = strokes_to_mnist(resized(EIGHT, 240)), strokes_to_mnist(resized(EIGHT, 40))
    assert big.shape == (28, 28) and big.dtype == np.uint8
    assert np.abs(big.astype(int) - small).mean() < 12  # the same digit, rounding of mouse pixels aside
    assert preprocess.cropped(big).shape[0] == preprocess.BOX            # the longer side fills MNIST's box
    index = np.arange(28)
    centre = big.sum(1) @ index / big.sum(), big.sum(0) @ index / big.sum()
    assert max(abs(c - preprocess.CENTRE) for c in centre) <= 0.5


@pytest.mark.parametrize('strokes', [[], [[(140, 140)]], [[(140, 140), (150, 145)]], [[(100, 100)], [(112, 108)]]],
                         ids=['nothing', 'click', 'tiny-line', 'two-dots'])
def test_tiny_drawing_is_a_hint_not_a_guess(strokes):
    with pytest.raises(TooSmallError, match='too small to read. Draw the digit bigger'):
        strokes_to_mnist(strokes)


def test_small_digits_are_read(model):
    """Small drawings: 60 px and 30 px tall (the brush does not matter to strokes_to_mnist)."""
    from support import DIGITS
    for height in (60, 30):
        inputs = [strokes_to_mnist(resized(DIGITS[d], height)) for d in range(10)]
        assert [p.digit for p in model.predict_batch(inputs)] == list(range(10))
