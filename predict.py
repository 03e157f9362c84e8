"""Classify images of handwritten digits with a trained checkpoint: importable (the app uses it) and a CLI.

    python predict.py my_digit.png another.jpg --top 3
    python predict.py scan.png --checkpoint model_checkpoints/shipped/mlp.pth

A model that scores 98% on MNIST guesses badly on a drawing or a photo unless the image is
prepared the way MNIST's digits were: light ink on a dark background, the digit scaled into a
20x20 box and placed in a 28x28 field by its centre of mass. `to_mnist` does exactly that.
"""
import argparse
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

import checkpoint as checkpoints
from data import normalize

CHECKPOINT_DIRS = (checkpoints.SHIPPED_DIR, checkpoints.RUNS_DIR)  # where load_model looks, shipped models first
SIZE, BOX = 28, 20   # MNIST: 28x28 field, the digit's longer side scaled to 20 px
CENTRE = 14.0        # where MNIST's intensity-weighted centre of mass lies (row and column index, measured)
NOISE_FLOOR = 0.2    # of the brightest ink: fainter is paper texture, shading or noise, and is removed
MIN_CONTRAST = 32    # below this (of 255) between ink and background, the image counts as blank
LARGEST_SIDE = 1000  # px; larger images are shrunk to this first: a digit a twentieth as high still spans 50 px
CANVAS = 280         # the app's drawing area, in pixels: 10x MNIST's 28
BRUSH = (8, 40, 20)  # the app's brush diameter in canvas pixels: min, max, default
STROKE_WIDTH = 2.0   # strokes_to_mnist's line width, in pixels of 28 (chosen on the drawn digits' dev half)
SUPERSAMPLE = 8      # strokes_to_mnist draws 8x larger and averages down: MNIST-like anti-aliased edges
MIN_DRAWING = 20     # canvas pixels: a drawing whose points span less is a click or a dot, not a digit


class BlankImageError(ValueError):
    """The image holds no ink: one flat colour, or contrast too faint to be a digit."""


class TooSmallError(ValueError):
    """The drawing is too small to read (a click, a dot, a tiny scribble): the user should draw bigger."""


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
        """The digit in one image (PIL image, path or array): see `to_mnist`."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images):
        """One forward pass for many images; a list of Predictions in the same order."""
        prepared = [to_mnist(image) for image in images]
        x = normalize(torch.from_numpy(np.stack(prepared))).to(self.device)
        scaled = self.network.logits(x).cpu().double() / self.temperature
        probabilities = scaled.softmax(1)
        energies = -self.temperature * scaled.logsumexp(1)
        predictions = []
        for p, energy, m in zip(probabilities, energies.tolist(), prepared):
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


def open_image(source):
    """A PIL image from a PIL image, a file path, or a 2-D array (uint8 0..255, or floats 0..1),
    ready for `grayscale`: upright as its EXIF orientation says, at most LARGEST_SIDE pixels on
    a side (shrunk before any work on the pixels; JPEGs already while decoding), and 16-bit or
    float images (modes I;16, I, F) scaled by their own range to 8 bits, which Pillow's
    convert('L') would instead clip at 255. Raises FileNotFoundError or ValueError naming the file."""
    if isinstance(source, (str, Path)):
        image = read_image_file(Path(source))
    elif isinstance(source, Image.Image):
        image = source
        if max(image.size) > LARGEST_SIDE:
            image = image.copy()   # the caller's image stays as it was
            image.thumbnail((LARGEST_SIDE, LARGEST_SIDE))
    else:
        return array_image(source)
    return eight_bit(ImageOps.exif_transpose(image))


def read_image_file(path):
    """The image in a file, decoded no larger than LARGEST_SIDE; every way it can fail is a
    FileNotFoundError or ValueError whose message names the file and says what to do."""
    try:
        if path.is_dir():
            raise ValueError(f'{path}: is a folder, not an image file; name the image files in it')
        if not path.is_file():
            raise FileNotFoundError(f'{path}: no such file')
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses twice that; an image it only warns
            # about is shrunk below before it takes much memory
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.thumbnail((LARGEST_SIDE, LARGEST_SIDE))   # calls draft(): a JPEG decodes at 1/2..1/8
                image.load()
                return image
    except PermissionError:
        raise ValueError(f'{path}: permission denied; make it readable for this user (chmod u+r) '
                         f'or copy it somewhere readable') from None
    except FileNotFoundError:   # raised above: it already says so
        raise
    except Image.DecompressionBombError:
        raise ValueError(f'{path}: is too large to read safely, more than {2 * Image.MAX_IMAGE_PIXELS:,} '
                         f'pixels; scale it down to a few thousand pixels a side') from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:   # some of Pillow's decoders raise SyntaxError
        raise ValueError(f'{path}: not an image that can be read ({e}); save it again as PNG or '
                         f'JPEG') from None


def array_image(source):
    array = np.asarray(source)
    if array.ndim != 2:
        raise ValueError(f'expected a 2-D grayscale array, got shape {array.shape}')
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if array.max(initial=0) <= 1:
            array = array * 255
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def eight_bit(image):
    """Modes I;16*, I and F (16-bit PNGs and TIFFs, float TIFFs) as 'L', scaled by the image's
    own range: their values have no fixed white (16-bit may be 0..65535, 0..4095, ...)."""
    if image.mode not in ('I', 'F') and not image.mode.startswith('I;16'):
        return image
    values = np.asarray(image, dtype=np.float64)
    low, high = values.min(), values.max()
    scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def grayscale(image):
    """Float array 0..255; transparency is flattened onto a background the ink contrasts with."""
    if image.mode == 'P':
        image = image.convert('RGBA')
    if image.mode in ('RGBA', 'LA', 'PA'):
        rgba = image.convert('RGBA')
        alpha = np.asarray(rgba.getchannel('A'), dtype=np.float64) / 255
        gray = np.asarray(rgba.convert('L'), dtype=np.float64)
        opaque = alpha > 0.5
        ink_is_dark = opaque.any() and gray[opaque].mean() < 128
        background = 255.0 if ink_is_dark else 0.0
        return gray * alpha + background * (1 - alpha)
    return np.asarray(image.convert('L'), dtype=np.float64)


def to_mnist(image):
    """The image as MNIST would have it: a 28x28 uint8 array, light ink on a dark background.

    Grayscale; a light background (judged by the median of the border pixels) is inverted and
    the background level subtracted, so ink on grey paper becomes ink on black; the ink is
    stretched to 255, cropped to its bounding box, thinned if its strokes are too thick for its
    size (`thinned`), its longer side scaled to 20 px keeping the aspect ratio (anti-aliased),
    and pasted into 28x28 so that its intensity-weighted centre of mass lies where MNIST's does. An image that is already 28x28 is taken as an MNIST image:
    only inverted if its background is light, never cropped or moved.
    Raises BlankImageError if there is no ink."""
    gray = grayscale(open_image(image))
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = np.median(border)
    if background > 127:
        gray, background = 255 - gray, 255 - background
    ink = np.clip(gray - background, 0, None)
    if ink.max(initial=0) < MIN_CONTRAST:
        raise BlankImageError('no ink found: the image is blank (one flat colour or nearly so); '
                              'draw or photograph a digit')
    if gray.shape == (SIZE, SIZE):
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)

    floor = NOISE_FLOOR * ink.max()
    ink = np.clip(ink - floor, 0, None) * (255 / (ink.max() - floor))
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    ink = thinned(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink.astype(np.float32), 'F').resize(size, Image.LANCZOS))
    return centred(np.clip(box, 0, 255))


def thinned(ink):
    """Cropped ink whose strokes would be thicker than STROKE_WIDTH in MNIST's box, eroded towards it
    (a minimum filter, at SUPERSAMPLE x the box so that the cost is bounded), and cropped again: a small
    digit written with a thick pen opens the loops it has not quite filled. The stroke width is the ink's
    area over half its outline; thin ink is returned as it is."""
    mask = Image.fromarray(np.where(ink > 127, 255, 0).astype(np.uint8))
    outline = np.count_nonzero(np.asarray(mask) > np.asarray(mask.filter(ImageFilter.MinFilter(3))))
    excess = 2 * np.count_nonzero(np.asarray(mask)) / max(outline, 1) * BOX / max(ink.shape) - STROKE_WIDTH
    if excess < 1:  # less than a pixel of 28 too thick
        return ink
    scale = BOX * SUPERSAMPLE / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    large = Image.fromarray(ink.astype(np.float32), 'F').resize(size, Image.LANCZOS)
    for _ in range(int(excess * SUPERSAMPLE / 2)):  # 3x3 minimum r times: a (2r+1)-square one, in O(r)
        large = large.filter(ImageFilter.MinFilter(3))
    eroded = np.asarray(large)
    if eroded.max() <= 0:
        return ink
    rows, cols = np.flatnonzero(eroded.max(1) > 0), np.flatnonzero(eroded.max(0) > 0)
    return np.clip(eroded[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 0, None)


def centred(box):
    """A box of ink (at most 20x20, floats 0..255) in MNIST's 28x28 field, its intensity-weighted centre
    of mass where MNIST's is: whole-pixel shifts, as MNIST's were, clamped so no ink falls off."""
    total = box.sum()
    centre_row = (box.sum(1) * np.arange(box.shape[0])).sum() / total
    centre_col = (box.sum(0) * np.arange(box.shape[1])).sum() / total
    top = int(np.clip(round(CENTRE - centre_row), 0, SIZE - box.shape[0]))
    left = int(np.clip(round(CENTRE - centre_col), 0, SIZE - box.shape[1]))
    field = np.zeros((SIZE, SIZE))
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- drawings (strokes)

def draw_segment(pen, start, end, width):
    """One piece of a stroke as the app draws it: a line `width` pixels wide, round at both ends so
    that consecutive pieces join round. Ink is 255 on 0: pieces drawn in any order give one image."""
    pen.line([start, end], fill=255, width=round(width))
    r = width / 2
    for x, y in (start, end):
        pen.ellipse((x - r, y - r, x + r, y + r), fill=255)


def draw_pieces(pen, strokes, width, transform=lambda point: point):
    """Every stroke (a list of (x, y) points) piece by piece, in the order the app draws them while the
    mouse moves: a dot where the button went down, then a piece to each next point; nothing between strokes."""
    for stroke in strokes:
        points = [transform(point) for point in stroke]
        for start, end in zip(points[:1] + points, points):
            draw_segment(pen, start, end, width)


def draw_strokes(strokes, brush=BRUSH[2], size=CANVAS):
    """The drawing as the app's canvas shows it: white ink on black, size x size, `brush` pixels wide."""
    image = Image.new('L', (size, size), 0)
    draw_pieces(ImageDraw.Draw(image), strokes, brush)
    return image


def strokes_to_mnist(strokes, width=STROKE_WIDTH):
    """A drawing as MNIST would have it, whatever brush it was drawn with: its points (canvas pixels)
    scaled so that the ink fits MNIST's 20x20 box, redrawn `width` pixels of 28 wide (about MNIST's own
    stroke), anti-aliased, and placed by centre of mass as `to_mnist` does. So a small digit drawn with
    a thick brush keeps the holes its brushed image has filled in.
    Raises TooSmallError when the points span less than MIN_DRAWING canvas pixels (a click, a dot)."""
    points = np.array([point for stroke in strokes for point in stroke], dtype=np.float64).reshape(-1, 2)
    span = np.ptp(points, 0).max() if len(points) else 0
    if span < MIN_DRAWING:
        raise TooSmallError(f'the drawing is {span:.0f} px across: too small to read. Draw the digit bigger '
                            f'(at least {MIN_DRAWING} px, best most of the box)')
    low, high = points.min(0), points.max(0)
    pen_width = width * SUPERSAMPLE
    scale = (BOX - width) * SUPERSAMPLE / span                # the ink, pen included, spans BOX pixels
    extent = (high - low) * scale
    size = np.ceil((extent + pen_width) / SUPERSAMPLE).astype(int) * SUPERSAMPLE
    offset = (size - extent) / 2
    image = Image.new('L', tuple(size), 0)
    draw_pieces(ImageDraw.Draw(image), strokes, pen_width, lambda p: tuple((np.asarray(p) - low) * scale + offset))
    box = image.resize(tuple(size // SUPERSAMPLE), Image.BOX)
    return centred(np.asarray(box, dtype=np.float64))


# ---------------------------------------------------------------- command line

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
        ranked = ', '.join(f'{digit} ({percent(p)})' for digit, p in prediction.top(args.top))
        print(f'{path}: {ranked}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
