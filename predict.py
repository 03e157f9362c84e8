"""Read handwritten digits and numbers with a trained checkpoint: importable (the app, the benchmark and scripts
use it) and a CLI.

    python predict.py my_digit.png another.jpg --top 3      # my_digit.png: 7 (99.1%, sure), 1 (0.5%), 2 (0.1%)
    python predict.py note.png                              # note.png: 2026 (97.1%, sure)
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
import segment
from preprocess import BlankImageError, normalize, open_image, strokes_to_mnist, to_mnist

CHECKPOINT_DIRS = (SHIPPED_DIR, RUNS_DIR)  # where load_model looks, shipped models first
SURE, UNSURE, NOT_A_DIGIT = 'sure', 'unsure', 'not a digit'  # a Prediction's verdicts
NOT_A_NUMBER = 'not a number'  # a Reading's verdicts: SURE, UNSURE or this
# Thresholds, measured with `python evaluate.py --drawn` on the shipped models (drawn dev half, and 200 seeded
# drawings of each kind of evaluate.negatives):
SURE_PROBABILITY = 0.8   # calibrated top probability: 80% reads as confident; the runner-up then has
                         # at most 0.2, so a close second is unsure too. Dev digits shown sure: CNN 98.3% (99.49% of
                         # them right), MLP 96.3%. Scribbles shown sure: CNN 18.0%, MLP 32.0% (python evaluate.py --drawn)
SPLIT_ASPECT = 1.2       # ink wider than this times its height with an empty column across it is two things side
MAX_ASPECT = 1.6         # by side; wider than MAX_ASPECT, even joined up. Together: none of the 1,200 drawn digits,
                         # 0.35% of MNIST's test digits (5s and 2s written flat), all 200 "12"-style pairs
# How `read` scores a grouping of a drawing into digits: the sum of each digit's log-probability, less these
# (natural-log units). Chosen on writers W01-W30 with `python evaluate.py --numbers` (a grid over 0-8, or
# 0-40 for SHORT_COST; a cost per digit, or per stroke's width of ink a picture's cut crosses, did best at 0):
NOT_A_DIGIT_COST = 4.0   # per group the model judges not a digit (its energy, `side_by_side`)
WIDE_COST = 4.0          # per unit of a group's width over its height above 1: two digits side by side are wide
STROKE_COST = 4.0        # per stroke past two in a group: 1 of the 600 dev digits has three
APART_COST = 4.0         # per group whose ink empty columns part (pictures): 2 of the 600 dev digits are
SHORT = 0.6              # a digit is rarely lower than this part of the whole writing's height (dev: 1 in 100),
SHORT_COST = 20.0        # so a group cut from a picture's ink costs this per unit of that height it falls short
RESUME_COST = 4.0        # per group that begins with a stroke continuing the one before it (segment.RESUME):
                         # dev numbers (seeds 0-4) read the same from 0 to 4, 3 fewer at 8; with a pen lifted
                         # mid-stroke in 3 in 10 dev one-stroke digits, 4 miscounts fewest
WITHIN_COST = 2.0        # per group lying within the columns of the group before it (dev: the same from 1 to 8),
WITHIN_SLACK = 0.15      # give or take this part of its own width: a 0 closed by a second stroke that pokes out
                         # a little. Dev numbers (seeds 0-4) read the same from 0 to 0.15, 1-3 fewer from 0.2 to
                         # 0.4 (a 1 overlapping its neighbour joins it); with every dev one-stroke 0 written so,
                         # 0.15 miscounts 2 of 530 numbers fewer, 0.3 most (4)
SPLIT_GAIN = 4.0         # a picture's group read unsure gives way to two halves cut straight down (segment.SPLIT_*)
                         # when they score this much more: two digits that overlap. Dev pictures (seeds 0-2, 1,500
                         # numbers): read right 90.7% -> 92.5%, the same from 2 to 4; 91.6% at 0 (unsure digits
                         # halved too), 91.0% at 6; trying groups read sure as well reads the same, with more to read
GROUPING_T = {'strokes': 0.003, 'picture': 0.3}  # a grouping's posterior is softmax(score / T) over all
                         # groupings: T with the lowest negative log-likelihood of "the number is right" (tried
                         # 1 to 0.0003 for strokes, 3 to 0.01 for pictures: dev pictures 0.140 at 0.3, 0.148 at
                         # 0.03; strokes 0.097 throughout). The digits' calibrated probabilities carry most of
                         # the doubt
ENERGY_COST = 1.0        # per unit of energy a group has above a typical digit's, the checkpoint's energy limit less
TYPICAL_DEPTH = 2.4      # this (shipped CNN: -4.0, above 73% of the dev digits'): beside its confidence in which
                         # digit a group is, the model's own measure of how much it looks like a digit at all, which
                         # two neighbours squeezed into one group ("16" read as a 6 at 0.97) do less than each alone.
                         # Dev strokes (seeds 0-1, 5,000 numbers): miscounts 20 -> 14 (13-19 for costs 0.75 to 1.5 and
                         # typical energies -4.4 to -3.5; 51 at a cost of 3, 0s split as "01"); dev pictures (seeds
                         # 0-2): read right 92.5% -> 92.9%. A checkpoint without a calibration has no such cost
MARK_COST = 2.0          # per mark (a decimal point, a minus sign: see segment.py) left out of every digit; the
                         # drawn digits hold no marks to choose it on: it makes a mark join a digit's group when
                         # that reads as well as the digit alone


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
class Reading:
    """A written number as `DigitClassifier.read` reads it."""
    number: str          # the digits left to right, '?' for a group that is not a digit: '2026', '20?6'
    digits: list         # one Prediction per group, left to right
    groups: list         # the stroke indices of each group (for a picture: its pieces of ink, left to right;
                         # two digits cut straight from one group, `split_unsure`, share its pieces)
    boxes: list          # each group's (x0, y0, x1, y1) in the drawing's coordinates
    confidence: float    # the probability that the whole number is right: see `read`
    verdict: str         # SURE, UNSURE or NOT_A_NUMBER: see `number_verdict`


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

    def read(self, drawing):
        """The number written in a drawing (a list of strokes, each a list of (x, y) points, y down, written
        digit by digit) or a picture (a path, PIL image or array): a Reading. Every candidate digit
        (segment.py: runs of consecutive strokes, or of neighbouring pieces of ink) is classified in one
        forward pass and the grouping with the highest score (`best_grouping`) is read; in a picture, a wide
        group read unsure is then tried cut in two (`split_unsure`, one more pass). Its confidence is
        the product of the digits' calibrated probabilities and the grouping's posterior among all
        groupings; a drawing read as one digit keeps exactly that digit's confidence, as predict_strokes
        gives it. Raises TooSmallError (a drawing) or BlankImageError (a picture) when there is nothing to read."""
        kind = 'strokes' if isinstance(drawing, (list, tuple)) else 'picture'
        units = segment.stroke_units(drawing) if kind == 'strokes' else segment.image_units(open_image(drawing))
        readable = [c for c in units.candidates if c.model_input is not None]
        predictions = dict(zip(map(id, readable), self.classify([c.model_input for c in readable]) if readable else []))
        scored = [(c, predictions.get(id(c))) for c in units.candidates]
        chosen, posterior = best_grouping(scored, units.marks, GROUPING_T[kind], units.continues, self.typical_energy)
        if units.split:
            chosen = self.split_unsure(chosen, units.split, segment.union(units.boxes))
        digits = [prediction for _, prediction in chosen]
        whole = len(chosen) == 1 and chosen[0][0].end - chosen[0][0].start == len(units.boxes)
        confidence = math.prod(p.confidence for p in digits) * (1 if whole else posterior) if digits else 0.0
        return Reading(''.join('?' if p.verdict == NOT_A_DIGIT else str(p.digit) for p in digits), digits,
                       [[m for i in range(c.start, c.end) for m in units.members[i]] for c, _ in chosen],
                       [tuple(float(v) for v in c.box) for c, _ in chosen], confidence,
                       number_verdict(digits, confidence))

    def split_unsure(self, chosen, split, whole):
        """`chosen`, a picture's groups, with each group that is read unsure and is wider than segment.SPLIT_WIDTH
        of the `whole` writing's height replaced by the best pair of its halves, `split(start, end)`, when they
        score SPLIT_GAIN more than it (`group_score`): two digits that overlap, which no seam parts. All the
        halves are read in one forward pass."""
        height = whole[3] - whole[1]
        tries = [(k, split(c.start, c.end)) for k, (c, p) in enumerate(chosen)
                 if p.verdict != SURE and c.box[2] - c.box[0] > segment.SPLIT_WIDTH * height]
        halves = [half for _, pairs in tries for pair in pairs for half in pair]
        predictions = iter(self.classify([half.model_input for half in halves]) if halves else [])
        better = {}
        for k, pairs in tries:
            best = group_score(*chosen[k], height, self.typical_energy) + SPLIT_GAIN
            for pair in pairs:
                read = [(half, next(predictions)) for half in pair]
                score = sum(group_score(half, p, height, self.typical_energy) for half, p in read)
                if score > best:
                    best, better[k] = score, read
        return [group for k, chosen_group in enumerate(chosen) for group in better.get(k, [chosen_group])]

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

    @property
    def typical_energy(self):
        """The energy of a typical digit to this model (ENERGY_COST); infinite without a calibration."""
        return self.energy_limit - TYPICAL_DEPTH

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


def group_score(candidate, prediction, height, typical_energy):
    """How well a candidate reads as one digit of writing `height` high: its log-probability, less
    NOT_A_DIGIT_COST if the model judges it not a digit, ENERGY_COST per unit of its energy above the model's
    `typical_energy`, WIDE_COST per unit of width over height above 1, up to 2 (few digits are wider than
    high: two side by side are), SHORT_COST per unit of `height` a piece cut from a picture's ink falls short
    of SHORT (a piece of a digit), and STROKE_COST and APART_COST for what segment.Candidate notes (a third
    stroke; ink side by side); None for what cannot be a digit alone (a mark)."""
    if prediction is None:
        return None
    box = candidate.box
    aspect = (box[2] - box[0]) / max(box[3] - box[1], 1e-9)
    short = max(0.0, SHORT - (box[3] - box[1]) / max(height, 1e-9)) if candidate.cut else 0.0
    return (math.log(max(prediction.confidence, 1e-12)) - WIDE_COST * min(max(0.0, aspect - 1), 1)
            - SHORT_COST * short - APART_COST * candidate.apart
            - STROKE_COST * candidate.extra_strokes - NOT_A_DIGIT_COST * (prediction.verdict == NOT_A_DIGIT)
            - ENERGY_COST * max(0.0, prediction.energy - typical_energy))


def within(before, box):
    """Whether a box lies within the columns of the box before it, give or take WITHIN_SLACK of its width:
    the later strokes of one digit (a 4's bar, the closing stroke of a 0) do; the next digit, written to the
    right, does not."""
    slack = WITHIN_SLACK * (box[2] - box[0])
    return before[0] - slack <= box[0] and box[2] <= before[2] + slack


def best_grouping(scored, marks, temperature, continues, typical_energy):
    """The best way to cover units 0..n-1 by candidates (segment.Candidate, Prediction or None) in order,
    each scored by `group_score` (with the model's `typical_energy`), less WITHIN_COST when it lies `within`
    the group before it and RESUME_COST when its first unit i `continues[i]` the one before (a pen lifted
    within a stroke); unit i may be left out at MARK_COST if `marks[i]` (or if no candidate can read it
    alone): dynamic programming over (units covered, last group). Returns the chosen [(candidate,
    prediction)] and its posterior, exp(score / temperature) over the sum of that over every grouping."""
    n = len(marks)
    whole = segment.union([c.box for c, _ in scored])
    scores = [group_score(c, p, whole[3] - whole[1], typical_energy) for c, p in scored]
    alone = {c.start for (c, _), s in zip(scored, scores) if s is not None and c.end == c.start + 1}
    starting = [[k for k, ((c, _), s) in enumerate(zip(scored, scores)) if c.start == i and s is not None]
                for i in range(n)]
    best = [dict() for _ in range(n + 1)]    # best[i][last group] = (score, (i before, last group before))
    total = [dict() for _ in range(n + 1)]   # the log of the sum of exp(score / temperature) over all of them
    best[0][None], total[0][None] = (0.0, None), 0.0
    for i in range(n):
        for last, (score, _) in best[i].items():
            steps = [(i + 1, last, -MARK_COST)] if marks[i] or i not in alone else []
            for k in starting[i]:
                inside = last is not None and within(scored[last][0].box, scored[k][0].box)
                resumed = last is not None and continues[i]
                steps.append((scored[k][0].end, k, scores[k] - WITHIN_COST * inside - RESUME_COST * resumed))
            for end, group, step in steps:
                if score + step > best[end].get(group, (-math.inf,))[0]:
                    best[end][group] = (score + step, (i, last))
                total[end][group] = np.logaddexp(total[end].get(group, -math.inf), total[i][last] + step / temperature)
    last = max(best[n], key=lambda group: best[n][group][0])
    posterior = math.exp(best[n][last][0] / temperature - np.logaddexp.reduce(list(total[n].values())))
    chosen, i = [], n
    while i > 0:   # back from the end: a step that changed the last group added that group
        i, before = best[i][last][1]
        if before != last:
            chosen.append(scored[last])
        last = before
    return chosen[::-1], posterior


def number_verdict(digits, confidence):
    """NOT_A_NUMBER when no group reads as a digit; UNSURE when one does not, or when the whole number is
    less than SURE_PROBABILITY likely; else SURE. One digit alone gets the verdict `verdict` gives it."""
    if all(p.verdict == NOT_A_DIGIT for p in digits):
        return NOT_A_NUMBER
    if any(p.verdict == NOT_A_DIGIT for p in digits) or confidence < SURE_PROBABILITY:
        return UNSURE
    return SURE


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


def reading_line(reading, top=1):
    """What the CLI prints for a Reading: "2026 (97.1%, sure)"; one digit as `shown` prints it."""
    if len(reading.digits) == 1:
        return shown(reading.digits[0], top)
    return f'{reading.number or "?"} ({percent(reading.confidence)}, {reading.verdict})'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files (PNG, JPEG, ...), each of a digit '
                                                                   'or a number')
    parser.add_argument('--checkpoint', help='a .pth checkpoint (default: the best in model_checkpoints/ and model_checkpoints/shipped/)')
    parser.add_argument('--top', type=int, default=1, help='for a picture of one digit: how many of the most '
                                                           'probable digits to print')
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
            reading = model.read(path)
        except BlankImageError as e:
            print(f'error: {path}: {e}', file=sys.stderr)
            failed += 1
            continue
        except (FileNotFoundError, ValueError) as e:  # these name the file themselves
            print(f'error: {e}', file=sys.stderr)
            failed += 1
            continue
        print(f'{path}: {reading_line(reading, args.top)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
