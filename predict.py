"""Classify handwritten digits with a trained checkpoint: importable (the app, the benchmark and scripts use
it) and a CLI.

    python predict.py my_digit.png another.jpg --top 3
    python predict.py scan.png --checkpoint model_checkpoints/shipped/mlp.pth

The image or drawing is first made into MNIST's 28x28 format (preprocess.py); the model's calibrated
probabilities then say how sure to be, and its energy whether the input looks like a digit at all.
"""
import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import files  # first, before the libraries that take seconds to load
if __name__ == '__main__':
    files.quiet_ctrl_c()

import numpy as np
import torch

import checkpoint as checkpoints
from files import RUNS_DIR, SHIPPED_DIR
from preprocess import BlankImageError, normalize, strokes_to_mnist, to_mnist

CHECKPOINT_DIRS = (SHIPPED_DIR, RUNS_DIR)  # where load_model looks, shipped models first
SURE, UNSURE, NOT_A_DIGIT = 'sure', 'unsure', 'not a digit'  # a Prediction's verdicts
# Thresholds, measured with `python evaluate.py --drawn` on the shipped models (drawn dev half, and 200 seeded
# drawings of each kind of evaluate.negatives):
SURE_PROBABILITY = 0.8   # calibrated top probability (the issue: 80% reads as confident); the runner-up then has
                         # at most 0.2, so a close second is unsure too. Dev digits sure: CNN 98.5% (99.2% of them
                         # right), MLP 92.2%. Scribbles shown sure: CNN 46.5%, MLP 49%: see evaluate.negatives_report
SPLIT_ASPECT = 1.2       # ink wider than this times its height with an empty column across it is two things side
MAX_ASPECT = 1.6         # by side; wider than MAX_ASPECT, even joined up. Together: none of the 1,200 drawn digits,
                         # 0.35% of MNIST's test digits (5s and 2s written flat), all 200 "12"-style pairs


@dataclass
class Prediction:
    digit: int
    confidence: float          # calibrated probability of `digit`, 0..1
    probabilities: list        # ten floats, one per digit: softmax(logits / T)
    model_input: np.ndarray    # the 28x28 uint8 image the model saw (light ink on dark)
    runner_up: int             # the second most probable digit
    energy: float              # -T * logsumexp(logits / T): high for inputs unlike any digit seen in training
    verdict: str               # SURE, UNSURE or NOT_A_DIGIT: see `verdict`

    def top(self, k=3):
        """The k most probable (digit, probability) pairs, most probable first."""
        return sorted(enumerate(self.probabilities), key=lambda p: -p[1])[:k]


@dataclass
class DigitClassifier:
    """A trained network and the checkpoint it came from (so a user interface can say which)."""
    network: object
    checkpoint: Path
    epoch: int
    val_accuracy: float   # 0..1, as recorded when the checkpoint was saved
    test_accuracy: float
    device: torch.device
    temperature: float = 1.0     # the checkpoint's calibration (checkpoint.calibration): logits are divided by it
    energy_limit: float = math.inf  # and an input with a higher energy is not a digit

    def predict(self, image):
        """The digit in one image (PIL image, path or array), made into a model input by `to_mnist`."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images):
        """One forward pass for many images (see `predict`); a list of Predictions in the same order."""
        return self.classify([to_mnist(image) for image in images])

    def predict_strokes(self, strokes):
        """The digit in a drawing (a list of strokes, each a list of (x, y) canvas pixels), as the app reads it."""
        return self.classify([strokes_to_mnist(strokes)])[0]

    def classify(self, model_inputs):
        """Predictions for model inputs already made (28x28 uint8 arrays, light ink on dark), in one forward pass."""
        x = normalize(torch.from_numpy(np.stack(model_inputs))).to(self.device)
        scaled = self.network.logits(x).cpu().double() / self.temperature
        if not torch.isfinite(scaled).all():
            raise ValueError(f'checkpoint {self.checkpoint}: the model\'s outputs are not finite numbers (its weights '
                             f'overflow); it is damaged: retrain it or pass another --checkpoint')
        probabilities = scaled.softmax(1)
        energies = -self.temperature * scaled.logsumexp(1)
        predictions = []
        for p, energy, m in zip(probabilities, energies.tolist(), model_inputs):
            (top, _), (digit, runner_up) = p.topk(2)
            not_a_digit = energy > self.energy_limit or side_by_side(m)
            predictions.append(Prediction(int(digit), float(top), p.tolist(), m, int(runner_up), energy,
                                          verdict(float(top), not_a_digit)))
        return predictions

    def describe(self):
        return (f'{self.checkpoint.name} (epoch {self.epoch}, val acc {self.val_accuracy:.2%}, '
                f'test acc {self.test_accuracy:.2%})')


def load_model(checkpoint=None, device='cpu'):
    """The model of `checkpoint`, or when None of the best in CHECKPOINT_DIRS (checkpoint.find_best:
    a model trained by the user replaces a shipped one only when its recorded validation accuracy,
    on the same held-out split, is higher).

    The architecture recorded in the checkpoint is rebuilt and its weights loaded
    (weights_only, mapped onto `device`, so a checkpoint saved on a GPU loads on a CPU).
    Raises FileNotFoundError (no checkpoint) or ValueError (corrupt, unsafe, another
    architecture, non-finite weights) with a message that says what to do."""
    if checkpoint is None:
        checkpoint = checkpoints.find_best(*CHECKPOINT_DIRS)
        if checkpoint is None:
            raise FileNotFoundError(f'no trained model: {" and ".join(map(str, CHECKPOINT_DIRS))} hold no checkpoint. '
                                    f'Train one with `python train.py`, or pass --checkpoint PATH')
    path = Path(checkpoint)
    device = torch.device(device)
    saved = checkpoints.load(path, map_location=device)
    try:
        network = checkpoints.build_model(saved, device)
    except checkpoints.CheckpointError as e:
        raise checkpoints.CheckpointError(f'checkpoint {path} {e}') from None
    metrics = saved['metrics']
    return DigitClassifier(network, path, saved['epoch'], metrics['val_acc'], metrics['test_acc'], device,
                           *checkpoints.calibration(saved))


def percent(p):
    """A probability as a person reads it: one decimal, but never a rounded "100.0%" or "0.0%" that the
    model did not say (a calibrated model is seldom that sure)."""
    if 0.999 <= p < 1:
        return '>99.9%'
    if 0 < p < 0.001:
        return '<0.1%'
    return f'{p:.1%}'


def side_by_side(model_input):
    """Whether the ink (above a quarter of full intensity) of a 28x28 model input looks like more than one
    thing in a row, as "12": wider than SPLIT_ASPECT times its height and split by an empty column, or wider
    than MAX_ASPECT times its height."""
    rows, cols = np.flatnonzero(model_input.max(1) > 64), np.flatnonzero(model_input.max(0) > 64)
    if not len(rows):
        return False
    aspect = (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)
    return aspect > MAX_ASPECT or aspect > SPLIT_ASPECT and len(cols) < cols[-1] - cols[0] + 1


def verdict(top, not_a_digit=False):
    """How sure to say a prediction is, from its calibrated top probability: NOT_A_DIGIT when
    the input was judged unlike a digit (an energy above the checkpoint's limit, `side_by_side`),
    UNSURE when the top probability is below SURE_PROBABILITY (the UI then names the runner-up: "2 or 8?"),
    else SURE."""
    if not_a_digit:
        return NOT_A_DIGIT
    if top < SURE_PROBABILITY:
        return UNSURE
    return SURE


# ---------------------------------------------------------------- command line

def shown(prediction, top=1):
    """A prediction as the CLI prints it, with its verdict: '7 (99.1%, sure)', with top=2 '7 (62.0%, unsure),
    1 (30.2%)', or 'not a digit (8, 41.0%)'."""
    ranked = prediction.top(top)
    if prediction.verdict == NOT_A_DIGIT:
        return 'not a digit (' + '; '.join(f'{digit}, {percent(p)}' for digit, p in ranked) + ')'
    (digit, p), others = ranked[0], ranked[1:]
    return ', '.join([f'{digit} ({percent(p)}, {prediction.verdict})'] + [f'{d} ({percent(q)})' for d, q in others])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files (PNG, JPEG, ...) of one digit each')
    parser.add_argument('--checkpoint', help='a .pth checkpoint (default: the best in model_checkpoints/ and model_checkpoints/shipped/)')
    parser.add_argument('--top', type=int, default=1, help='how many of the most probable digits to print')
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error('--top must be at least 1')
    try:
        model = load_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    failed = 0
    for path in args.images:
        try:
            prediction = model.predict(path)
        except BlankImageError as e:
            print(f'error: {path}: {e}', file=sys.stderr)
            failed += 1
            continue
        except (FileNotFoundError, ValueError) as e:  # these name the file themselves
            print(f'error: {e}', file=sys.stderr)
            failed += 1
            continue
        print(f'{path}: {shown(prediction, args.top)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
