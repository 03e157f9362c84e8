"""Evaluate a model on a whole split (the one function training, the notebook and the app share),
the tables that explain the result (per-class accuracy, the classification report, the most confused
pairs of digits), and the drawn-digits benchmark: 1,200 digits drawn with a pen by 60 writers who are
not in MNIST, put on the app's canvas and read exactly as the app reads a drawing.

    python evaluate.py --drawn                                  # the default model, as the app reads
    python evaluate.py --drawn --checkpoint model_checkpoints/shipped/mlp.pth
    python evaluate.py --drawn --pipeline image --brush 40 --size 60 --sheet /tmp/mistakes.png
    python evaluate.py --calibration --figure training_plots/reliability.png   # ECE before and after T
"""
import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

import predict
from checkpoint import ROOT
from data import load_mnist, normalize
from nn import log_softmax

DIGITS = list(range(10))
DRAWN_FILE = ROOT / 'data' / 'drawn_digits' / 'uji_digits.json.gz'
HALVES = {'dev': ('W01', 'W30'), 'test': ('W31', 'W60')}  # writers: choose on dev, report test as well
ENERGY_QUANTILE = 0.998  # of the validation images stay below the energy limit. Chosen on the drawn dev half:
                         # with predict.side_by_side, 99.8% (CNN) and 98.8% (MLP) of the dev digits are shown as
                         # digits, and 35.5% (CNN) and 16% (MLP) of scribbles as not a digit (evaluate.py --drawn)
DRAWN_SIZE = 182  # pixels: a drawn digit's longer side on the 280-px canvas (65%), as people draw in the app


@dataclass
class Evaluation:
    loss: float                 # mean cross-entropy over the split
    accuracy: float             # fraction correct, 0..1
    predictions: torch.Tensor   # (N,) predicted class
    probabilities: torch.Tensor  # (N, 10)
    labels: torch.Tensor        # (N,) true class


def evaluate(model, images, labels, batch_size=1000, temperature=1.0):
    """Loss (summed over samples, divided by N), accuracy, predictions and probabilities, in
    batches on the tensors' device; probabilities are softmax(logits / temperature), as predict
    computes them with a calibrated checkpoint. The model is put in eval mode and restored after."""
    if len(labels) == 0:
        raise ValueError('cannot evaluate on an empty split')
    was_training = model.training
    model.eval()
    total_loss, log_probs = 0.0, []
    for start in range(0, len(labels), batch_size):
        log_p = log_softmax(model.logits(images[start:start + batch_size]) / temperature)
        total_loss += -log_p.gather(1, labels[start:start + batch_size, None]).sum().item()
        log_probs.append(log_p)
    model.train(was_training)
    probabilities = torch.cat(log_probs).exp()
    predictions = probabilities.argmax(1)
    return Evaluation(loss=total_loss / len(labels),
                      accuracy=(predictions == labels).float().mean().item(),
                      predictions=predictions, probabilities=probabilities, labels=labels)


# ---------------------------------------------------------------- tables

def confusion(evaluation):
    """10x10 counts (numpy): row = true digit, column = predicted digit."""
    cells = evaluation.labels.cpu() * len(DIGITS) + evaluation.predictions.cpu()
    return torch.bincount(cells, minlength=len(DIGITS) ** 2).reshape(len(DIGITS), len(DIGITS)).numpy()


def per_class_accuracy(evaluation):
    """One row per digit: the share of its test images classified correctly, and how many there are."""
    counts = confusion(evaluation)
    samples = pd.Series(counts.sum(1))
    return pd.DataFrame({'digit': DIGITS, 'accuracy': counts.diagonal() / samples, 'samples': samples})


def classification_report_table(evaluation):
    """scikit-learn's report (precision, recall, F1, support per digit, then accuracy and the
    macro and weighted averages) as a DataFrame indexed by row name."""
    from sklearn.metrics import classification_report  # here: train.py imports this module, not sklearn
    report = classification_report(evaluation.labels.cpu(), evaluation.predictions.cpu(), labels=DIGITS,
                                   target_names=[str(d) for d in DIGITS], output_dict=True, zero_division=0)
    accuracy = report.pop('accuracy')  # a bare number; shown as sklearn prints it, in the F1 column
    table = pd.DataFrame(report).T
    table.loc['accuracy'] = [np.nan, np.nan, accuracy, len(evaluation.labels)]
    table = table.loc[[str(d) for d in DIGITS] + ['accuracy', 'macro avg', 'weighted avg']]
    return table.astype({'support': int}).rename_axis('class')


def most_confused_pairs(evaluation, top=10):
    """The off-diagonal cells of the confusion matrix with the most images, largest first:
    which digit was taken for which, how often, and as a share of that true digit's images."""
    counts = confusion(evaluation)
    errors = counts.copy()
    np.fill_diagonal(errors, 0)
    true, predicted = np.nonzero(errors)
    pairs = pd.DataFrame({'true': true, 'predicted': predicted, 'count': counts[true, predicted],
                          'share_of_true': counts[true, predicted] / counts.sum(1)[true]})
    return pairs.sort_values(['count', 'true', 'predicted'], ascending=[False, True, True],
                             ignore_index=True).head(top)


def save_tables(evaluation, folder='training_plots'):
    """Write the three tables as CSV into `folder`; returns {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {'per_class_accuracy': per_class_accuracy(evaluation),
              'classification_report': classification_report_table(evaluation),
              'most_confused_pairs': most_confused_pairs(evaluation)}
    paths = {}
    for name, table in tables.items():
        paths[name] = folder / f'{name}.csv'
        table.to_csv(paths[name], index=table.index.name is not None, float_format='%.6f')
    return paths


def evaluation_of(predictions, labels):
    """An Evaluation (for the tables above) from predict's Predictions of labelled images."""
    probabilities, labels = torch.tensor([p.probabilities for p in predictions]), torch.tensor(labels)
    predicted = probabilities.argmax(1)
    loss = -probabilities.gather(1, labels[:, None]).clamp_min(1e-12).log().mean().item()
    return Evaluation(loss=loss, accuracy=(predicted == labels).float().mean().item(),
                      predictions=predicted, probabilities=probabilities, labels=labels)


# ---------------------------------------------------------------- calibration

def calibration_bins(probabilities, labels, bins=15):
    """Per equal-width confidence bin (lo, hi] of the highest probability: number of
    predictions, their mean confidence and their accuracy (NaN for an empty bin), as numpy."""
    probabilities = torch.as_tensor(probabilities).detach().cpu().double()
    confidence, predicted = probabilities.max(1)
    correct = (predicted == torch.as_tensor(labels).cpu()).double()
    index = torch.bucketize(confidence, torch.arange(1, bins, dtype=torch.float64) / bins)
    count = torch.bincount(index, minlength=bins).double()
    with np.errstate(invalid='ignore'):
        return (count.long().numpy(), (torch.bincount(index, confidence, minlength=bins) / count).numpy(),
                (torch.bincount(index, correct, minlength=bins) / count).numpy())


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE: the gap between accuracy and mean confidence in each equal-width confidence bin,
    weighted by the bin's share of the predictions (sum of |acc - conf| * n_bin / N), 0..1."""
    count, confidence, accuracy = calibration_bins(probabilities, labels, bins)
    filled = count > 0
    return float((np.abs(accuracy - confidence)[filled] * count[filled]).sum() / count.sum())


def logits_of(model, images, batch_size=1000):
    """The model's logits for `images` in eval mode, in batches, as one tensor (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model.logits(images[start:start + batch_size]) for start in range(0, len(images), batch_size)])
    model.train(was_training)
    return logits


def nll(logits, labels, temperature=1.0):
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature)."""
    log_p = log_softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature)
    return -log_p.gather(1, torch.as_tensor(labels)[:, None]).mean().item()


def energies(logits, temperature=1.0):
    """The energy score -T * logsumexp(logits / T) of each row (Liu et al. 2020): high (near 0 or above) for
    inputs unlike the training digits, low for ones the model has seen many of."""
    return -temperature * torch.logsumexp(torch.as_tensor(logits, dtype=torch.float64) / temperature, 1)


def calibration(logits, labels, split='val'):
    """What train.py stores as a checkpoint's 'calibration', from the logits of a held-out split: the fitted
    temperature, the NLL before and after it, and energy_limit, the energy that ENERGY_QUANTILE of the split's
    images stay below (predict calls a drawing with a higher energy "not a digit"). Computed on the CPU in
    float64 (which MPS lacks)."""
    logits, labels = torch.as_tensor(logits).cpu(), torch.as_tensor(labels).cpu()
    temperature = fit_temperature(logits, labels)
    return {'temperature': temperature, 'split': split, 'nll_before': nll(logits, labels),
            'nll_after': nll(logits, labels, temperature),
            'energy_limit': torch.quantile(energies(logits, temperature), ENERGY_QUANTILE).item()}


def fit_temperature(logits, labels, low=0.05, high=20.0, tolerance=1e-5):
    """Temperature scaling (Guo et al. 2017): the T in [low, high] that minimises the mean NLL of
    softmax(logits / T), found by golden-section search over log T (the NLL is convex in 1/T, so it has
    one minimum). Dividing every logit by one T never changes which digit wins: accuracy is kept, only the
    confidence moves. T < 1 sharpens an under-confident model (label smoothing makes one), T > 1 softens."""
    logits = torch.as_tensor(logits, dtype=torch.float64).cpu()
    labels = torch.as_tensor(labels).cpu()
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    f_c, f_d = nll(logits, labels, np.exp(c)), nll(logits, labels, np.exp(d))
    while b - a > tolerance:
        if f_c < f_d:
            b, d, f_d = d, c, f_c
            c = b - ratio * (b - a)
            f_c = nll(logits, labels, np.exp(c))
        else:
            a, c, f_c = c, d, f_d
            d = a + ratio * (b - a)
            f_d = nll(logits, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


# ---------------------------------------------------------------- drawn digits

class DrawnDataError(FileNotFoundError):
    """The drawn digits are not where the project reads them."""


def load_drawn(path=DRAWN_FILE):
    """The drawn digits by half: {'dev': [...], 'test': [...]}, each digit a dict with label, writer,
    repetition and strokes (pen-down point lists in tablet units, y down). See data/drawn_digits/README.md."""
    path = Path(path)
    if not path.is_file():
        raise DrawnDataError(f'{path}: no such file. The drawn digits (UJI Pen Characters v2, see the README\'s '
                             f'"Real drawings") do not download with MNIST; copy them: mkdir -p data/drawn_digits && '
                             f'cp ../shared/drawn_digits/* data/drawn_digits/')
    with gzip.open(path, 'rt') as f:
        digits = json.load(f)
    return {half: [d for d in digits if first <= d['writer'] <= last] for half, (first, last) in HALVES.items()}


def on_canvas(strokes, size=DRAWN_SIZE):
    """Tablet strokes as a person draws them in the app: scaled, keeping the aspect, so the longer side
    spans `size` pixels (whatever the tablet's resolution), centred on the canvas, in whole pixels as
    mouse events are."""
    points = np.concatenate([np.asarray(stroke, dtype=np.float64) for stroke in strokes])
    low, high = points.min(0), points.max(0)
    scale = size / max((high - low).max(), 1)
    offset = (predict.CANVAS - (high - low) * scale) / 2
    return [[tuple(int(v) for v in np.rint((np.asarray(p) - low) * scale + offset)) for p in stroke]
            for stroke in strokes]


def read_drawn(model, digits, pipeline='strokes', brush=None, size=DRAWN_SIZE, width=None):
    """Predictions for drawn digits placed on the canvas by `on_canvas`, read the way the app reads them:
    'strokes', the points redrawn at MNIST's scale (predict.strokes_to_mnist, `width` px of 28), or
    'image', the canvas drawn with a `brush`-pixel brush (predict.draw_strokes) prepared like a file."""
    drawings = [on_canvas(d['strokes'], size) for d in digits]
    if pipeline == 'strokes':
        inputs = [predict.strokes_to_mnist(s, width or predict.STROKE_WIDTH) for s in drawings]
    else:
        inputs = [predict.draw_strokes(s, brush or predict.BRUSH[2]) for s in drawings]
    return model.predict_batch(inputs)


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


def contact_sheet(digits, predictions, brush=None, size=DRAWN_SIZE, columns=8):
    """The mistakes as one image: for each, the drawing as on the canvas, the model's 28x28 input, and
    'true -> predicted (confidence)' with the writer."""
    cell, side = 112, 28 * 4
    wrong = [(d, p) for d, p in zip(digits, predictions) if p.digit != d['label']]
    rows = max(1, -(-len(wrong) // columns))
    sheet = Image.new('L', (columns * (cell + side + 8), rows * (cell + 18)), 255)
    pen = ImageDraw.Draw(sheet)
    for i, (digit, prediction) in enumerate(wrong):
        x, y = (i % columns) * (cell + side + 8), (i // columns) * (cell + 18)
        drawing = predict.draw_strokes(on_canvas(digit['strokes'], size), brush or predict.BRUSH[2])
        sheet.paste(drawing.resize((cell, cell), Image.LANCZOS), (x, y))
        sheet.paste(Image.fromarray(prediction.model_input).resize((side, side), Image.NEAREST), (x + cell, y))
        pen.text((x + 2, y + cell + 3), f"{digit['label']} -> {prediction.digit} "
                                        f"({predict.percent(prediction.confidence)}) {digit['writer']}", fill=0)
    return sheet


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


def uncalibrated(probabilities, temperature):
    """The probabilities before temperature scaling: softmax(T * log p), as log p is logits / T up to a constant."""
    return (temperature * torch.as_tensor(probabilities, dtype=torch.float64).clamp_min(1e-300).log()).softmax(1)


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
                inputs.append(predict.strokes_to_mnist(strokes))
            except predict.TooSmallError:
                pass
        shares = verdict_shares(model.predict_batch(inputs))
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
                inputs.append(predict.strokes_to_mnist(strokes[:k]))
                labels.append(digit['label'])
            except predict.TooSmallError:
                pass
    multi = sum(len(d['strokes']) > 1 for d in digits)
    prefixes = sum(len(d['strokes']) - 1 for d in digits)
    sure = [p.digit == label for p, label in zip(model.predict_batch(inputs), labels) if p.verdict == predict.SURE]
    return (f'unfinished drawings (the first strokes of the {multi} multi-stroke digits, {prefixes} in all), '
            f'read as the pen lifts: a sure wrong digit {(len(sure) - sum(sure)) / max(1, prefixes):.1%}, '
            f'a sure right one {sum(sure) / max(1, prefixes):.1%}')


def calibration_report(model, data_dir=ROOT / 'data', figure=None):
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
        from plots import reliability_diagram
        reliability_diagram({'before (T = 1)': (before.probabilities, labels),  # tuples: run as a script,
                             f'after (T = {model.temperature:.3g})': (after.probabilities, labels)},  # Evaluation is
                            path=figure)                                          # __main__'s, not plots'
        lines.append(f'reliability diagram saved to {figure}')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on the drawn digits (dev and test half) '
                                                 'and its calibration.')
    parser.add_argument('--drawn', nargs='?', const=DRAWN_FILE, metavar='FILE',
                        help='the drawn-digits benchmark (FILE: data/drawn_digits/uji_digits.json.gz)')
    parser.add_argument('--calibration', action='store_true',
                        help='expected calibration error and NLL on MNIST test before and after temperature scaling')
    parser.add_argument('--figure', metavar='FILE.png', help='with --calibration: save the reliability diagram')
    parser.add_argument('--checkpoint', help='a .pth checkpoint (default: the best in model_checkpoints/)')
    parser.add_argument('--pipeline', choices=('strokes', 'image'), default='strokes',
                        help="strokes: the points redrawn at MNIST's scale, as the app reads (default); "
                             'image: the brushed canvas prepared like an image file')
    parser.add_argument('--brush', type=int, help='brush diameter in canvas pixels for the image pipeline and '
                                                  'the contact sheet (default: the app\'s, 20)')
    parser.add_argument('--size', type=int, default=DRAWN_SIZE,
                        help=f"each digit's longer side on the 280-px canvas, in pixels (default {DRAWN_SIZE})")
    parser.add_argument('--width', type=float, help='line width of the strokes pipeline, in pixels of 28 '
                                                    '(default: predict.STROKE_WIDTH)')
    parser.add_argument('--limit', type=int, help='only N digits of each half, spread over it (a quick look)')
    parser.add_argument('--sheet', metavar='FILE.png', help="save the mistakes of both halves as a contact sheet")
    args = parser.parse_args(argv)
    if args.drawn is None and not args.calibration:
        parser.error('say what to evaluate: --drawn (the drawn-digits benchmark), --calibration, or both')
    if args.figure and not args.calibration:
        parser.error('--figure saves the reliability diagram of --calibration: add --calibration')
    if not predict.MIN_DRAWING <= args.size <= predict.CANVAS:
        parser.error(f'--size must be between {predict.MIN_DRAWING} and {predict.CANVAS} pixels')
    if args.brush is not None and args.brush < 1:
        parser.error('--brush must be at least 1 pixel')
    if args.width is not None and not 0 < args.width < predict.BOX:
        parser.error(f'--width must be more than 0 and less than {predict.BOX} pixels')
    if args.limit is not None and args.limit < 1:
        parser.error('--limit must be at least 1')
    try:
        model = predict.load_model(args.checkpoint)
        print(f'model: {model.describe()}')
        if args.calibration:
            print(calibration_report(model, figure=args.figure))
        if args.drawn is None:
            return 0
        halves = load_drawn(args.drawn)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except OSError as e:  # --figure: a folder that cannot be made, a file that cannot be written
        print(f'error: --figure {args.figure}: cannot save the reliability diagram ({e})', file=sys.stderr)
        return 1
    if args.pipeline == 'strokes':
        how = f'strokes redrawn {args.width or predict.STROKE_WIDTH:g} px wide of 28 (predict.strokes_to_mnist)'
    else:
        how = f'image drawn with a {args.brush or predict.BRUSH[2]}-px brush (predict.draw_strokes, to_mnist)'
    print(f'read as: {how}; digits {args.size} px on the {predict.CANVAS}-px canvas')
    mistakes = []
    for name, digits in halves.items():
        if args.limit:
            digits = digits[::max(1, len(digits) // args.limit)][:args.limit]
        predictions = read_drawn(model, digits, args.pipeline, args.brush, args.size, args.width)
        labels = [d['label'] for d in digits]
        print(report(name, evaluation_of(predictions, labels)))
        print(honesty_report(name, predictions, labels, model.temperature))
        mistakes += [(d, p) for d, p in zip(digits, predictions)]
    print(negatives_report(model, halves['dev'], count=args.limit or 200))
    print(unfinished_report(model, [d for digits in halves.values() for d in digits]))
    if args.sheet:
        try:
            contact_sheet(*zip(*mistakes), brush=args.brush, size=args.size).save(args.sheet)
        except (OSError, ValueError) as e:  # a folder that is not there, an unknown extension
            print(f'error: --sheet {args.sheet}: cannot save the contact sheet ({e})', file=sys.stderr)
            return 1
        print(f'mistakes saved to {args.sheet}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
