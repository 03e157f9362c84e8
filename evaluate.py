"""The drawn-digits benchmark and its CLI: 1,200 digits drawn with a pen by 60 writers who are not in MNIST,
put on the app's canvas and read exactly as the app reads a drawing; and how honest the model's confidence
is (calibration on MNIST test, verdicts on drawings that are not one digit).

    python evaluate.py --drawn                                  # the default model, as the app reads
    python evaluate.py --drawn --checkpoint model_checkpoints/shipped/mlp.pth
    python evaluate.py --drawn --pipeline image --brush 40 --size 60 --sheet /tmp/mistakes.png
    python evaluate.py --calibration --figure training_plots/reliability.png   # ECE before and after T
    python evaluate.py --numbers                                # numbers of 2-6 drawn digits, read whole
    python evaluate.py --numbers --pipeline image --brush 3     # only their pictures, written with a fine pen
"""
import argparse
import gzip
import hashlib
import json
import math
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import files  # first, before the libraries that take seconds to load
if __name__ == '__main__':
    files.quiet_ctrl_c()

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

import predict
import preprocess
from data import load_mnist
from files import DATA_DIR, DRAWN_FILE, ROOT
from metrics import evaluate, evaluation_of, expected_calibration_error, most_confused_pairs, per_class_accuracy, \
    uncalibrated
from preprocess import normalize
HALVES = {'dev': ('W01', 'W30'), 'test': ('W31', 'W60')}  # writers: choose on dev, report test as well
DRAWN_SHA256 = '19dccd456f3f5a5f5df68c88a9a0f1452b15d18faa641e1d7cc32284f76b3104'
RESTORE = f'git checkout -- {DRAWN_FILE.relative_to(ROOT)}'  # what brings a missing or damaged file back
DRAWN_SIZE = 182  # pixels: a drawn digit's longer side on the 280-px canvas (65%), as people draw in the app
PIPELINES = ('strokes', 'image')  # how a drawing is read: its strokes (as the app reads), or a picture of it


# ---------------------------------------------------------------- drawn digits

class DrawnDataError(FileNotFoundError):
    """The drawn digits are missing or damaged; the message names the file and what to do."""


def load_drawn(path=DRAWN_FILE):
    """The drawn digits by half: {'dev': [...], 'test': [...]}, each digit a dict with label, writer,
    repetition and strokes (pen-down point lists in tablet units, y down). See drawn_digits/README.md.
    The shipped file is checked against its SHA-256 first; any other file named is checked as it is read.
    Raises DrawnDataError naming the file, what is wrong and what to do."""
    path = Path(path)
    shipped = path.resolve() == DRAWN_FILE
    fix = f'restore it with `{RESTORE}`' if shipped else 'pass a file in the format of drawn_digits/README.md'
    if not path.is_file():
        raise DrawnDataError(f'{path}: no such file. The drawn digits ship with the repository in '
                             f'{RESTORE.split()[-1]}: restore it with `{RESTORE}`')
    try:
        content = path.read_bytes()
    except OSError as e:
        raise DrawnDataError(f'{path}: cannot be read ({e.strerror or e}); make it readable') from None
    if shipped and hashlib.sha256(content).hexdigest() != DRAWN_SHA256:
        raise DrawnDataError(f'{path}: checksum mismatch (its SHA-256 is not the published one in '
                             f'drawn_digits/README.md); it is damaged: restore it with '
                             f'`{RESTORE}`')
    try:
        digits = json.loads(gzip.decompress(content))
    except (OSError, EOFError, zlib.error, ValueError) as e:  # not gzip, cut short, bit-flipped; not JSON
        raise DrawnDataError(f'{path}: not gzipped JSON that can be read ({str(e).strip() or type(e).__name__}); '
                             f'{fix}') from None
    problem = drawn_problem(digits)
    if problem:
        raise DrawnDataError(f'{path}: {problem}; {fix}')
    halves = {half: [d for d in digits if first <= d['writer'] <= last] for half, (first, last) in HALVES.items()}
    empty = [half for half, chosen in halves.items() if not chosen]
    if empty:
        raise DrawnDataError(f'{path}: holds no digits of the {empty[0]} half (writers {"-".join(HALVES[empty[0]])}); {fix}')
    return halves


def drawn_problem(digits):
    """What is wrong with the content of a drawn-digits file, or None: a non-empty list of digits, each with
    a label 0-9, a writer W01-W60 and strokes, each a non-empty list of [x, y] points."""
    if not isinstance(digits, list) or not digits:
        return (f'holds {"an empty list" if digits == [] else "a " + type(digits).__name__}, not a list of drawn '
                f'digits')
    for i, digit in enumerate(digits):
        if not isinstance(digit, dict) or not {'label', 'writer', 'strokes'} <= digit.keys():
            return f'digit {i} is not an object with a label, a writer and strokes'
        label, writer, strokes = digit['label'], digit['writer'], digit['strokes']
        if type(label) is not int or not 0 <= label <= 9:
            return f'digit {i} has the label {label!r}, not a digit 0 to 9'
        if not isinstance(writer, str) or not HALVES['dev'][0] <= writer <= HALVES['test'][1] or len(writer) != 3:
            return f'digit {i} has the writer {writer!r}, not one of W01 to W60'
        if not (isinstance(strokes, list) and strokes and all(
                isinstance(stroke, list) and stroke and all(point_ok(p) for p in stroke) for stroke in strokes)):
            return f'digit {i} (writer {writer}) has strokes that are not lists of [x, y] points'
    return None


def point_ok(point):
    return (isinstance(point, list) and len(point) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point))


def on_canvas(strokes, size=DRAWN_SIZE):
    """Tablet strokes as a person draws them in the app: scaled, keeping the aspect, so the longer side
    spans `size` pixels (whatever the tablet's resolution), centred on the canvas, in whole pixels as
    mouse events are."""
    points = np.concatenate([np.asarray(stroke, dtype=np.float64) for stroke in strokes])
    low, high = points.min(0), points.max(0)
    scale = size / max((high - low).max(), 1)
    offset = (preprocess.CANVAS - (high - low) * scale) / 2
    return [[tuple(int(v) for v in np.rint((np.asarray(p) - low) * scale + offset)) for p in stroke]
            for stroke in strokes]


def read_drawn(model, digits, pipeline='strokes', brush=preprocess.BRUSH[2], size=DRAWN_SIZE,
               width=preprocess.STROKE_WIDTH):
    """Predictions for drawn digits placed on the canvas by `on_canvas`, read the way the app reads them:
    'strokes', the points redrawn at MNIST's scale (preprocess.strokes_to_mnist, `width` px of 28), or
    'image', the canvas drawn with a `brush`-pixel brush (preprocess.draw_strokes) prepared like a file."""
    drawings = [on_canvas(d['strokes'], size) for d in digits]
    if pipeline == 'strokes':
        return model.classify([preprocess.strokes_to_mnist(s, width) for s in drawings])
    return model.predict_batch([preprocess.draw_strokes(s, brush) for s in drawings])


NEGATIVE_KINDS = ('scribble', 'random strokes', 'pair')  # drawings that are not one digit


def negatives(digits, count=200, seed=0):
    """Drawings that are not a single digit, on the app's canvas, `count` of each kind (a seeded rng:
    the same every call): 'scribble', one smooth random walk of 30-80 steps; 'random strokes', one to four
    strokes through two to four random points; 'pair', two of `digits` (drawn digits, e.g. the dev half)
    side by side as one drawing, like "12". Returns {kind: [strokes, ...]}."""
    rng = np.random.default_rng(seed)

    def scribble():
        point, heading, points = rng.uniform(80, 200, 2), rng.uniform(0, 2 * np.pi), []
        for _ in range(rng.integers(30, 81)):
            heading += rng.normal(0, 0.7)
            point = np.clip(point + 9 * np.array([np.cos(heading), np.sin(heading)]), 30, 250)
            points.append(tuple(int(v) for v in np.rint(point)))
        return [points]

    def random_strokes():
        return [[tuple(int(v) for v in rng.integers(40, 241, 2)) for _ in range(rng.integers(2, 5))]
                for _ in range(rng.integers(1, 5))]

    def pair():
        first, second = (on_canvas(digits[i]['strokes'], size=110) for i in rng.choice(len(digits), 2, replace=False))
        return ([[(x - 60, y) for x, y in stroke] for stroke in first] +
                [[(x + 60, y) for x, y in stroke] for stroke in second])

    makers = {'scribble': scribble, 'random strokes': random_strokes, 'pair': pair}
    return {kind: [makers[kind]() for _ in range(count)] for kind in NEGATIVE_KINDS}


def contact_sheet(digits, predictions, brush=preprocess.BRUSH[2], size=DRAWN_SIZE, columns=8):
    """The mistakes as one image: for each, the drawing as on the canvas, the model's 28x28 input, and
    'true -> predicted (confidence)' with the writer."""
    cell, side = 112, 28 * 4
    wrong = [(d, p) for d, p in zip(digits, predictions) if p.digit != d['label']]
    rows = max(1, -(-len(wrong) // columns))
    sheet = Image.new('L', (columns * (cell + side + 8), rows * (cell + 18)), 255)
    pen = ImageDraw.Draw(sheet)
    for i, (digit, prediction) in enumerate(wrong):
        x, y = (i % columns) * (cell + side + 8), (i // columns) * (cell + 18)
        drawing = preprocess.draw_strokes(on_canvas(digit['strokes'], size), brush)
        sheet.paste(drawing.resize((cell, cell), Image.LANCZOS), (x, y))
        sheet.paste(Image.fromarray(prediction.model_input).resize((side, side), Image.NEAREST), (x + cell, y))
        pen.text((x + 2, y + cell + 3), f"{digit['label']} -> {prediction.digit} "
                                        f"({predict.percent(prediction.confidence)}) {digit['writer']}", fill=0)
    return sheet


def save_image(image, path):
    """Save a PIL image whole or not at all (files.atomic_write), in the format its extension names."""
    kind = Image.registered_extensions().get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f'unknown image file extension {Path(path).suffix!r}; use .png')
    files.atomic_write(path, lambda f: image.save(f, kind))


def report(name, evaluation, top=5):
    """The lines `--drawn` prints for one half: accuracy, accuracy per digit, the most confused pairs."""
    wrong = int((evaluation.predictions != evaluation.labels).sum())
    per_digit = per_class_accuracy(evaluation)
    pairs = most_confused_pairs(evaluation, top=top)
    return '\n'.join([
        f'{name} (writers {"-".join(HALVES[name])}): {evaluation.accuracy:.2%} of {len(evaluation.labels)} ({wrong} wrong)',
        '  per digit: ' + '  '.join(f'{d} {a:.0%}' if n else f'{d} -'
                                    for d, a, n in zip(per_digit.digit, per_digit.accuracy, per_digit.samples)),
        '  most confused: ' + (', '.join(f'{t}->{p} x{c}' for t, p, c in
                                         zip(pairs.true, pairs.predicted, pairs['count'])) or 'none')])



def verdict_shares(predictions):
    """The share of each verdict (predict.SURE, UNSURE, NOT_A_DIGIT) among predictions."""
    return {v: sum(p.verdict == v for p in predictions) / max(1, len(predictions))
            for v in (predict.SURE, predict.UNSURE, predict.NOT_A_DIGIT)}


def honesty_report(name, predictions, labels, temperature):
    """The lines `--drawn` adds for a half: calibration error and how often the app says sure, unsure, not a digit."""
    probabilities = torch.tensor([p.probabilities for p in predictions])
    shares = verdict_shares(predictions)
    sure = [p.digit == label for p, label in zip(predictions, labels) if p.verdict == 'sure']
    return (f'  ECE (15 bins) {expected_calibration_error(probabilities, labels):.2%} at T = {temperature:.3g} '
            f'({expected_calibration_error(uncalibrated(probabilities, temperature), labels):.2%} at T = 1)\n'
            f'  shown as: ' + ', '.join(f'{v} {s:.1%}' for v, s in shares.items())
            + f'; the sure ones {sum(sure) / max(1, len(sure)):.2%} right')


def negatives_report(model, digits, count=200, seed=0):
    """How the drawings that are not one digit (`negatives`, pairs made of `digits`) are shown: the share of
    each kind shown as a confident digit (verdict sure), unsure, not a digit, or too small to read."""
    lines = [f'not one digit ({count} of each kind, seed {seed}):']
    for kind, drawings in negatives(digits, count, seed).items():
        inputs = []
        for strokes in drawings:
            try:
                inputs.append(preprocess.strokes_to_mnist(strokes))
            except preprocess.TooSmallError:
                pass
        shares = verdict_shares(model.classify(inputs))
        lines.append(f'  {kind}: confident digit {shares["sure"] * len(inputs) / count:.1%}, unsure '
                     f'{shares["unsure"] * len(inputs) / count:.1%}, not a digit '
                     f'{shares["not a digit"] * len(inputs) / count:.1%}, too small {1 - len(inputs) / count:.1%}')
    return '\n'.join(lines)


def unfinished_report(model, digits):
    """How the unfinished drawings of multi-stroke digits (the first 1, 2, ... strokes of each) would be shown
    if read as soon as the pen lifts: often as a sure digit, and a wrong one (a 5's body without its bar, a
    4's first stroke), which is why the app shows a verdict only once the pen has rested."""
    inputs, labels = [], []
    for digit in digits:
        strokes = on_canvas(digit['strokes'])
        for k in range(1, len(strokes)):
            try:
                inputs.append(preprocess.strokes_to_mnist(strokes[:k]))
                labels.append(digit['label'])
            except preprocess.TooSmallError:
                pass
    multi = sum(len(d['strokes']) > 1 for d in digits)
    prefixes = sum(len(d['strokes']) - 1 for d in digits)
    sure = [p.digit == label for p, label in zip(model.classify(inputs), labels) if p.verdict == predict.SURE]
    return (f'unfinished drawings (the first strokes of the {multi} multi-stroke digits, {prefixes} in all), '
            f'read as the pen lifts: a sure wrong digit {(len(sure) - sum(sure)) / max(1, prefixes):.1%}, '
            f'a sure right one {sum(sure) / max(1, prefixes):.1%}')


def calibration_report(model, data_dir=DATA_DIR, figure=None):
    """MNIST test before and after the model's temperature: NLL, ECE and, to `figure`, the reliability diagram;
    and how the test digits are shown (verdicts), read as image files."""
    raw, labels = load_mnist(data_dir)['test']  # read once: normalised for the network, raw as files
    images = normalize(raw)
    before = evaluate(model.network, images, labels)
    after = evaluate(model.network, images, labels, temperature=model.temperature)
    lines = [f'MNIST test ({len(labels):,} images), accuracy {after.accuracy:.2%}:']
    for name, result in (('before (T = 1)', before), (f'after (T = {model.temperature:.3g})', after)):
        lines.append(f'  {name}: ECE (15 bins) {expected_calibration_error(result.probabilities, labels):.2%}, '
                     f'NLL {result.loss:.4f}')
    shares = verdict_shares(model.predict_batch(list(raw.numpy())))  # as files
    lines.append('  shown as: ' + ', '.join(f'{v} {s:.2%}' for v, s in shares.items()))
    if figure:
        from plots import reliability_diagram  # here: matplotlib only when a figure is asked for
        reliability_diagram({'before (T = 1)': before, f'after (T = {model.temperature:.3g})': after}, path=figure,
                            subject=f'{model.checkpoint.name} on the {len(labels):,} MNIST test images')
        lines.append(f'reliability diagram saved to {figure}')
    return '\n'.join(lines)


# ---------------------------------------------------------------- numbers

NUMBER_HEIGHT = 120      # px: a digit's height in a number written on the app's writing area
NUMBER_LENGTHS = range(2, 7)
GAP = (0.2, 0.15, -0.3)  # the gap after a digit, of the height: mean, spread and least; about one in ten < 0
JITTER = 0.03            # of the height: how far a digit's bottom strays from the common baseline
MARGIN = 30              # px around a number on its canvas


def compose(digits, rng, height=NUMBER_HEIGHT, ink=0):
    """A number written with `digits` (drawn digits of one writer, in writing order), as strokes in whole
    pixels: one scale for all, so that their median height is `height`; bottoms on a common baseline,
    each off it by JITTER; each digit's ink GAP right of the one before (negative: touching or overlapping),
    its lines `ink` (the pen's width) further. Returns each digit's strokes (a list per digit, in writing
    order)."""
    arrays = [[np.asarray(stroke, dtype=np.float64) for stroke in d['strokes']] for d in digits]
    scale = height / max(np.median([np.ptp(np.concatenate(a)[:, 1]) for a in arrays]), 1)
    placed, right = [], 0.0
    for strokes in arrays:
        low, high = np.concatenate(strokes).min(0), np.concatenate(strokes).max(0)
        left = right + ink + max(rng.normal(*GAP[:2]), GAP[2]) * height if placed else 0.0
        corner = np.array([left, rng.normal(0, JITTER) * height]) - np.array([low[0], high[1]]) * scale
        placed.append([stroke * scale + corner for stroke in strokes])
        right = left + (high[0] - low[0]) * scale
    origin = np.concatenate([p for strokes in placed for p in strokes]).min(0) - MARGIN
    return [[[tuple(int(v) for v in np.rint(p - origin)) for p in stroke] for stroke in strokes]
            for strokes in placed]


def compose_numbers(digits, count, seed=0, ink=0):
    """`count` numbers of each length in NUMBER_LENGTHS, each of one writer's own drawn digits (a writer
    and then their drawings chosen at random, none twice in a number), written with a pen `ink` pixels
    wide (`compose`): [(label str, digit strokes)]."""
    rng = np.random.default_rng(seed)
    writers = {}
    for digit in digits:
        writers.setdefault(digit['writer'], []).append(digit)
    names = sorted(writers)
    numbers = []
    for length in NUMBER_LENGTHS:
        for _ in range(count):
            own = writers[names[rng.integers(len(names))]]
            chosen = [own[i] for i in rng.choice(len(own), length, replace=False)]
            numbers.append((''.join(str(d['label']) for d in chosen), compose(chosen, rng, ink=ink)))
    return numbers


def pen(pipeline, brush=preprocess.BRUSH[2]):
    """The width (px) of what a pipeline reads: the strokes' lines, or a picture's `brush` (default the app's).
    Gaps between digits are drawn between that ink, as a writer spaces what they see."""
    return 0 if pipeline == 'strokes' else brush


def neighbours_touch(digit_strokes, width):
    """For each neighbouring pair of a composed number's digits, whether their ink, drawn `width` px wide (1
    for 0), touches."""
    size = canvas_size([stroke for strokes in digit_strokes for stroke in strokes])
    inks = [np.asarray(preprocess.draw_strokes(strokes, max(width, 1), size)) > 0 for strokes in digit_strokes]
    return [bool((ndimage.binary_dilation(a) & b).any()) for a, b in zip(inks, inks[1:])]


def canvas_size(strokes):
    """(width, height) of a canvas just large enough for a drawing: MARGIN right of and below its points."""
    return tuple(int(v) for v in np.concatenate([np.asarray(stroke) for stroke in strokes]).max(0) + MARGIN)


def number_canvas(strokes, brush=preprocess.BRUSH[2]):
    """A drawing on a canvas just large enough for it (`canvas_size`), drawn with `brush` (default the app's)."""
    return preprocess.draw_strokes(strokes, brush, canvas_size(strokes))


def read_number(model, digit_strokes, pipeline, brush=preprocess.BRUSH[2]):
    """The Reading of a composed number through its strokes or, drawn with `brush` (default the app's), its
    picture."""
    strokes = [stroke for strokes in digit_strokes for stroke in strokes]
    return model.read(strokes if pipeline == 'strokes' else number_canvas(strokes, brush))


def one_by_one(model, digit_strokes, pipeline, brush=preprocess.BRUSH[2]):
    """The digits of a composed number each read alone, as --drawn reads a digit: their predicted digits."""
    if pipeline == 'strokes':
        predictions = model.classify([preprocess.strokes_to_mnist(strokes) for strokes in digit_strokes])
    else:
        predictions = model.predict_batch([number_canvas(strokes, brush) for strokes in digit_strokes])
    return ''.join(str(p.digit) for p in predictions)


class NumberRow(NamedTuple):
    """How one composed number was read."""
    length: int
    count_right: bool     # the reading has as many digits as the number
    exact: bool           # the reading is the number
    one_by_one: bool      # each digit read alone is right
    verdict: str
    confidence: float
    touching: list        # for each neighbouring pair of digits, whether their ink touches
    split_alone: bool     # miscounted, and one of its digits read alone is not one digit either


def split_alone(model, digit_strokes, pipeline, brush=preprocess.BRUSH[2]):
    """Whether a digit of a composed number, read alone as its number is read (`read_number`), is not read
    as one digit: a miscount that reading the digits together did not cause."""
    return any(len(read_number(model, [strokes], pipeline, brush).number) != 1 for strokes in digit_strokes)


def numbers_rows(model, numbers, pipeline, brush=preprocess.BRUSH[2]):
    """A NumberRow for each composed number read through `pipeline` (a picture drawn with `brush`)."""
    rows = []
    for label, digit_strokes in numbers:
        reading = read_number(model, digit_strokes, pipeline, brush)
        count_right = len(reading.number) == len(label)
        rows.append(NumberRow(len(label), count_right, reading.number == label,
                              one_by_one(model, digit_strokes, pipeline, brush) == label, reading.verdict,
                              reading.confidence, neighbours_touch(digit_strokes, pen(pipeline, brush)),
                              not count_right and split_alone(model, digit_strokes, pipeline, brush)))
    return rows


def numbers_lines(pipeline, rows):
    """The lines --numbers prints for one pipeline of one half."""
    def shares(subset):
        n = max(1, len(subset))
        count, exact = sum(r.count_right for r in subset) / n, sum(r.exact for r in subset) / n
        alone = sum(r.one_by_one for r in subset) / n
        return f'digit count {count:.1%}, exact {exact:.1%} (the digits one by one: {alone:.1%})'
    sure = [r for r in rows if r.verdict == predict.SURE]
    pairs = [touch for r in rows for touch in r.touching]
    lines = [f'  {pipeline} ({np.mean(pairs):.1%} of neighbours touch): {shares(rows)}; shown sure '
             f'{len(sure) / max(1, len(rows)):.1%}, of which {sum(r.exact for r in sure) / max(1, len(sure)):.1%} '
             f'right; mean confidence {np.mean([r.confidence for r in rows]):.1%}']
    for length in NUMBER_LENGTHS:
        lines.append(f'    {length} digits: {shares([r for r in rows if r.length == length])}')
    for name, subset in (('no digits touch', [r for r in rows if not any(r.touching)]),
                         ('some digits touch', [r for r in rows if any(r.touching)])):
        lines.append(f'    {name} ({len(subset)} numbers): {shares(subset)}')
    miscounted = [r for r in rows if not r.count_right]
    lines.append(f'    miscounted: {len(miscounted)} numbers, {sum(r.split_alone for r in miscounted)} of them holding '
                 f'a digit that is not read as one digit even alone')
    return lines


def reading_time(model, digits, pipelines=PIPELINES, repeats=15, seed=1):
    """The median time (ms) to read a 6-digit number through each of `pipelines` (its strokes, its picture),
    one at a time on one thread, as the app reads (test_mnist_tkinter sets torch to one thread)."""
    import time
    threads, times = torch.get_num_threads(), {}
    torch.set_num_threads(1)
    for pipeline in pipelines:
        numbers, spent = compose_numbers(digits, repeats, seed, ink=pen(pipeline))[-repeats:], []
        for _, digit_strokes in numbers:
            start = time.perf_counter()
            read_number(model, digit_strokes, pipeline)
            spent.append(time.perf_counter() - start)
        times[pipeline] = 1000 * np.median(spent)
    torch.set_num_threads(threads)
    return times


def numbers_report(model, halves, count=100, seed=0, brush=preprocess.BRUSH[2], pipelines=PIPELINES):
    """What --numbers prints: for each half, numbers of 2-6 digits composed from one writer's own digits
    (`compose_numbers`), read through each of `pipelines`: the strokes, the picture drawn with `brush`
    (default the app's)."""
    drawn_with = f'the app\'s {brush}-px brush' if brush == preprocess.BRUSH[2] else f'a {brush}-px pen'
    read_as = {'strokes': 'strokes of lines', 'image': f'pictures drawn with {drawn_with}'}
    print(f'numbers: {count} of each length {NUMBER_LENGTHS.start}-{NUMBER_LENGTHS.stop - 1} per half, '
          f'seed {seed}, digits {NUMBER_HEIGHT} px high, gaps between their ink {GAP[0]:g} +- {GAP[1]:g} of the '
          f'height (at least {GAP[2]:g}): {", ".join(read_as[pipeline] for pipeline in pipelines)}')
    for name, digits in halves.items():
        print(f'{name} (writers {"-".join(HALVES[name])}):')
        for pipeline in pipelines:
            numbers = compose_numbers(digits, count, seed, ink=pen(pipeline, brush))
            print('\n'.join(numbers_lines(pipeline, numbers_rows(model, numbers, pipeline, brush))))
    times = reading_time(model, halves['dev'], pipelines)
    print(f'reading a 6-digit number (median of 15, one thread): '
          + ', '.join(f'{pipeline} {ms:.0f} ms' for pipeline, ms in times.items()))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on the drawn digits (dev and test half) '
                                                 'and its calibration.')
    parser.add_argument('--drawn', nargs='?', const=DRAWN_FILE, metavar='FILE',
                        help='the drawn-digits benchmark (FILE: drawn_digits/uji_digits.json.gz)')
    parser.add_argument('--numbers', nargs='?', type=int, const=100, metavar='COUNT',
                        help='the numbers benchmark: COUNT (default 100) numbers of each length 2-6 per half, '
                             'composed from one writer\'s drawn digits, read through strokes and pictures')
    parser.add_argument('--calibration', action='store_true',
                        help='expected calibration error and NLL on MNIST test before and after temperature scaling')
    parser.add_argument('--figure', metavar='FILE.png', help='with --calibration: save the reliability diagram')
    parser.add_argument('--checkpoint', help='a .pth checkpoint (default: the best in model_checkpoints/)')
    parser.add_argument('--pipeline', choices=PIPELINES,
                        help="strokes: the points redrawn at MNIST's scale, as the app reads (the default of "
                             '--drawn); image: the brushed canvas prepared like an image file (--numbers reads '
                             'through both unless told one)')
    parser.add_argument('--brush', type=int, default=preprocess.BRUSH[2],
                        help='brush diameter in canvas pixels for the image pipeline, the contact sheet and the '
                             f'pictures of --numbers (default: the app\'s, {preprocess.BRUSH[2]})')
    parser.add_argument('--size', type=int, default=DRAWN_SIZE,
                        help=f"each digit's longer side on the 280-px canvas, in pixels (default {DRAWN_SIZE})")
    parser.add_argument('--width', type=float, default=preprocess.STROKE_WIDTH,
                        help=f'line width of the strokes pipeline, in pixels of 28 (default {preprocess.STROKE_WIDTH:g})')
    parser.add_argument('--limit', type=int, help='only N digits of each half, spread over it (a quick look)')
    parser.add_argument('--sheet', metavar='FILE.png', help="save the mistakes of both halves as a contact sheet")
    args = parser.parse_args(argv)
    problems = [(args.drawn is None and not args.calibration and args.numbers is None,
                 'say what to evaluate: --drawn (the drawn-digits benchmark), --numbers, --calibration, or more'),
                (args.numbers is not None and args.numbers < 1, '--numbers COUNT must be at least 1'),
                (args.figure and not args.calibration,
                 '--figure saves the reliability diagram of --calibration: add --calibration'),
                (not preprocess.MIN_DRAWING <= args.size <= preprocess.CANVAS,
                 f'--size must be between {preprocess.MIN_DRAWING} and {preprocess.CANVAS} pixels'),
                (args.brush < 1, '--brush must be at least 1 pixel'),
                (not 0 < args.width < preprocess.BOX,
                 f'--width must be more than 0 and less than {preprocess.BOX} pixels'),
                (args.limit is not None and args.limit < 1, '--limit must be at least 1')]
    for wrong, message in problems:
        if wrong:
            parser.error(message)
    return args


def drawn_report(model, halves, args):
    """What --drawn prints: each half's accuracy and honesty, then the drawings that are not one digit.
    Returns every (digit, prediction) pair, for the contact sheet."""
    pipeline = args.pipeline or 'strokes'
    if pipeline == 'strokes':
        how = f'strokes redrawn {args.width:g} px wide of 28 (preprocess.strokes_to_mnist)'
    else:
        how = f'image drawn with a {args.brush}-px brush (preprocess.draw_strokes, to_mnist)'
    print(f'read as: {how}; digits {args.size} px on the {preprocess.CANVAS}-px canvas')
    readings = []
    for name, digits in halves.items():
        if args.limit:
            digits = digits[::max(1, len(digits) // args.limit)][:args.limit]
        predictions = read_drawn(model, digits, pipeline, args.brush, args.size, args.width)
        labels = [d['label'] for d in digits]
        print(report(name, evaluation_of(predictions, labels)))
        print(honesty_report(name, predictions, labels, model.temperature))
        readings += zip(digits, predictions)
    print(negatives_report(model, halves['dev'], count=args.limit or 200))
    print(unfinished_report(model, [d for digits in halves.values() for d in digits]))
    return readings


def main(argv=None):
    args = parse_args(argv)
    try:
        model = predict.load_model(args.checkpoint)
        print(f'model: {model.describe()}')
        if args.calibration:
            print(calibration_report(model, figure=args.figure))
        if args.drawn is None and args.numbers is None:
            return 0
        halves = load_drawn(args.drawn or DRAWN_FILE)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except OSError as e:  # --figure: a folder that cannot be made, a file that cannot be written
        where = f'--figure {args.figure}: cannot save the reliability diagram' if args.figure else 'cannot read a file'
        print(f'error: {where} ({e})', file=sys.stderr)
        return 1
    if args.numbers:
        numbers_report(model, halves, args.numbers, brush=args.brush,
                       pipelines=(args.pipeline,) if args.pipeline else PIPELINES)
    if args.drawn is None:
        return 0
    readings = drawn_report(model, halves, args)
    if args.sheet:
        try:
            save_image(contact_sheet(*zip(*readings), brush=args.brush, size=args.size), args.sheet)
        except (OSError, ValueError) as e:  # a folder that is not there, an unknown extension
            print(f'error: --sheet {args.sheet}: cannot save the contact sheet ({e})', file=sys.stderr)
            return 1
        print(f'mistakes saved to {args.sheet}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
