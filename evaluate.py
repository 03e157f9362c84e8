"""Evaluate a model on a whole split (the one function training, the notebook and the app share),
the tables that explain the result (per-class accuracy, the classification report, the most confused
pairs of digits), and the drawn-digits benchmark: 1,200 digits drawn with a pen by 60 writers who are
not in MNIST, put on the app's canvas and read exactly as the app reads a drawing.

    python evaluate.py --drawn                                  # the default model, as the app reads
    python evaluate.py --drawn --checkpoint model_checkpoints/shipped/mlp.pth
    python evaluate.py --drawn --pipeline image --brush 40 --size 60 --sheet mistakes.png
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

from nn import log_softmax

DIGITS = list(range(10))
DRAWN_FILE = Path(__file__).resolve().parent / 'data' / 'drawn_digits' / 'uji_digits.json.gz'
HALVES = {'dev': ('W01', 'W30'), 'test': ('W31', 'W60')}  # writers: choose on dev, report test as well
DRAWN_SIZE = 182  # pixels: a drawn digit's longer side on the 280-px canvas (65%), as people draw in the app


@dataclass
class Evaluation:
    loss: float                 # mean cross-entropy over the split
    accuracy: float             # fraction correct, 0..1
    predictions: torch.Tensor   # (N,) predicted class
    probabilities: torch.Tensor  # (N, 10)
    labels: torch.Tensor        # (N,) true class


def evaluate(model, images, labels, batch_size=1000):
    """Loss (summed over samples, divided by N), accuracy, predictions and probabilities, in
    batches on the tensors' device. The model is put in eval mode and restored after."""
    if len(labels) == 0:
        raise ValueError('cannot evaluate on an empty split')
    was_training = model.training
    model.eval()
    total_loss, log_probs = 0.0, []
    for start in range(0, len(labels), batch_size):
        log_p = log_softmax(model.logits(images[start:start + batch_size]))
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


# ---------------------------------------------------------------- drawn digits

class DrawnDataError(FileNotFoundError):
    """The drawn digits are not where the project reads them."""


def load_drawn(path=DRAWN_FILE):
    """The drawn digits by half: {'dev': [...], 'test': [...]}, each digit a dict with label, writer,
    repetition and strokes (pen-down point lists in tablet units, y down). See data/drawn_digits/README.md."""
    path = Path(path)
    if not path.is_file():
        raise DrawnDataError(f'{path}: no such file. Copy the drawn digits: mkdir -p data/drawn_digits && '
                             f'cp ../shared/drawn_digits/* data/drawn_digits/')
    with gzip.open(path, 'rt') as f:
        digits = json.load(f)
    return {half: [d for d in digits if first <= d['writer'] <= last] for half, (first, last) in HALVES.items()}


def on_canvas(strokes, size=DRAWN_SIZE):
    """Tablet strokes as a person draws them in the app: scaled, keeping the aspect, so the longer side
    spans `size` pixels (whatever the tablet's resolution), centred on the canvas, in whole pixels as
    mouse events are."""
    from predict import CANVAS
    points = np.concatenate([np.asarray(stroke, dtype=np.float64) for stroke in strokes])
    low, high = points.min(0), points.max(0)
    scale = size / max((high - low).max(), 1)
    offset = (CANVAS - (high - low) * scale) / 2
    return [[tuple(int(v) for v in np.rint((np.asarray(p) - low) * scale + offset)) for p in stroke]
            for stroke in strokes]


def read_drawn(model, digits, pipeline='strokes', brush=None, size=DRAWN_SIZE, width=None):
    """Predictions for drawn digits placed on the canvas by `on_canvas`, read the way the app reads them:
    'strokes', the points redrawn at MNIST's scale (predict.strokes_to_mnist, `width` px of 28), or
    'image', the canvas drawn with a `brush`-pixel brush (predict.draw_strokes) prepared like a file."""
    import predict
    drawings = [on_canvas(d['strokes'], size) for d in digits]
    if pipeline == 'strokes':
        inputs = [predict.strokes_to_mnist(s, width or predict.STROKE_WIDTH) for s in drawings]
    else:
        inputs = [predict.draw_strokes(s, brush or predict.BRUSH[2]) for s in drawings]
    return model.predict_batch(inputs)


def contact_sheet(digits, predictions, brush=None, size=DRAWN_SIZE, columns=8):
    """The mistakes as one image: for each, the drawing as on the canvas, the model's 28x28 input, and
    'true -> predicted (confidence)' with the writer."""
    import predict
    from PIL import Image, ImageDraw
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
        pen.text((x + 2, y + cell + 3), f"{digit['label']} -> {prediction.digit} ({prediction.confidence:.0%}) "
                                        f"{digit['writer']}", fill=0)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on the drawn digits (dev and test half).')
    parser.add_argument('--drawn', nargs='?', const=DRAWN_FILE, metavar='FILE',
                        help='the drawn-digits benchmark (FILE: data/drawn_digits/uji_digits.json.gz)')
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
    import predict
    if args.drawn is None:
        parser.error('say what to evaluate: --drawn (the drawn-digits benchmark)')
    if not predict.MIN_DRAWING <= args.size <= predict.CANVAS:
        parser.error(f'--size must be between {predict.MIN_DRAWING} and {predict.CANVAS} pixels')
    if args.brush is not None and args.brush < 1:
        parser.error('--brush must be at least 1 pixel')
    if args.width is not None and not 0 < args.width < predict.BOX:
        parser.error(f'--width must be more than 0 and less than {predict.BOX} pixels')
    if args.limit is not None and args.limit < 1:
        parser.error('--limit must be at least 1')
    try:
        halves = load_drawn(args.drawn)
        model = predict.load_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.pipeline == 'strokes':
        how = f'strokes redrawn {args.width or predict.STROKE_WIDTH:g} px wide of 28 (predict.strokes_to_mnist)'
    else:
        how = f'image drawn with a {args.brush or predict.BRUSH[2]}-px brush (predict.draw_strokes, to_mnist)'
    print(f'model: {model.describe()}\nread as: {how}; digits {args.size} px on the {predict.CANVAS}-px canvas')
    mistakes = []
    for name, digits in halves.items():
        if args.limit:
            digits = digits[::max(1, len(digits) // args.limit)][:args.limit]
        predictions = read_drawn(model, digits, args.pipeline, args.brush, args.size, args.width)
        print(report(name, evaluation_of(predictions, [d['label'] for d in digits])))
        mistakes += [(d, p) for d, p in zip(digits, predictions)]
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
