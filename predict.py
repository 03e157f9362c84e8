"""Classify images of handwritten digits with a trained checkpoint: importable (the app uses it) and a CLI.

    python predict.py my_digit.png another.jpg --top 3
    python predict.py scan.png --checkpoint model_checkpoints/shipped/mlp.pth

A model that scores 98% on MNIST guesses badly on a drawing or a photo unless the image is
prepared the way MNIST's digits were: light ink on a dark background, the digit scaled into a
20x20 box and placed in a 28x28 field by its centre of mass. `preprocess` does exactly that.
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

import checkpoint as checkpoints
from data import normalize

CHECKPOINT_DIRS = (checkpoints.SHIPPED_DIR, checkpoints.RUNS_DIR)  # where load_model looks, shipped models first
SIZE, BOX = 28, 20   # MNIST: 28x28 field, the digit's longer side scaled to 20 px
CENTRE = 14.0        # where MNIST's intensity-weighted centre of mass lies (row and column index, measured)
NOISE_FLOOR = 0.2    # of the brightest ink: fainter is paper texture, shading or noise, and is removed
MIN_CONTRAST = 32    # below this (of 255) between ink and background, the image counts as blank


class BlankImageError(ValueError):
    """The image holds no ink: one flat colour, or contrast too faint to be a digit."""


@dataclass
class Prediction:
    digit: int
    confidence: float          # probability of `digit`, 0..1
    probabilities: list        # ten floats, one per digit
    model_input: np.ndarray    # the 28x28 uint8 image the model saw (light ink on dark)

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

    def predict(self, image):
        """The digit in one image (PIL image, path or array): see `preprocess`."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images):
        """One forward pass for many images; a list of Predictions in the same order."""
        prepared = [to_mnist(image) for image in images]
        x = normalize(torch.from_numpy(np.stack(prepared))).to(self.device)
        probabilities = self.network(x).cpu()
        return [Prediction(int(p.argmax()), float(p.max()), p.tolist(), m)
                for p, m in zip(probabilities, prepared)]

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
    return DigitClassifier(network, path, saved['epoch'], metrics['val_acc'], metrics['test_acc'], device)


def open_image(source):
    """A PIL image from a PIL image, a file path, or a 2-D array (uint8 0..255, or floats 0..1)."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f'{path}: no such file')
        try:
            with Image.open(path) as image:
                image.load()
                return image
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f'{path}: not an image that can be read ({e})') from None
    array = np.asarray(source)
    if array.ndim != 2:
        raise ValueError(f'expected a 2-D grayscale array, got shape {array.shape}')
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if array.max(initial=0) <= 1:
            array = array * 255
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


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
    stretched to 255, cropped to its bounding box, its longer side scaled to 20 px keeping the
    aspect ratio (anti-aliased), and pasted into 28x28 so that its intensity-weighted centre of
    mass lies where MNIST's does. An image that is already 28x28 is taken as an MNIST image:
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
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink.astype(np.float32), 'F').resize(size, Image.LANCZOS))
    box = np.clip(box, 0, 255)

    total = box.sum()
    centre_row = (box.sum(1) * np.arange(box.shape[0])).sum() / total
    centre_col = (box.sum(0) * np.arange(box.shape[1])).sum() / total
    # whole-pixel shifts, as MNIST's were; clamped so no ink falls off the field
    top = int(np.clip(round(CENTRE - centre_row), 0, SIZE - box.shape[0]))
    left = int(np.clip(round(CENTRE - centre_col), 0, SIZE - box.shape[1]))
    field = np.zeros((SIZE, SIZE))
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


def preprocess(image):
    """The model's input for one image: `to_mnist`, then exactly the training normalisation
    (data.normalize). A float tensor (1, 28, 28) in [-1, 1]."""
    return normalize(torch.from_numpy(to_mnist(image))[None])[0]


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
        ranked = ', '.join(f'{digit} ({p:.1%})' for digit, p in prediction.top(args.top))
        print(f'{path}: {ranked}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
