"""The model's input: how an image file, a photo or the app's strokes become the 28x28 picture MNIST's
digits are, and the tensor a network reads.

A model that scores 99% on MNIST guesses badly on a drawing or a photo unless the image is prepared the
way MNIST's digits were: light ink on a dark background, the digit scaled into a 20x20 box and placed in a
28x28 field by its centre of mass. `to_mnist` does that for pictures; `strokes_to_mnist` for the pen's
points, redrawn with a stroke like MNIST's whatever the brush. Everything that feeds a model (predict, the
app, the drawn-digits benchmark, data's synthetic non-digits, your own drawings in my_digits) goes through
this module, and it imports nothing of the project.
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from scipy import ndimage

MEAN, STD = 0.5, 0.5  # the original's Normalize((0.5,), (0.5,))
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


def normalize(images):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], in exactly the order of
    torchvision's ToTensor (divide by 255) then Normalize((0.5,), (0.5,))."""
    return images.unsqueeze(1).float().div(255).sub(MEAN).div(STD)


# ---------------------------------------------------------------- pictures (files, photos, arrays)

def open_image(source):
    """A PIL image from a PIL image, a file path, or an array (uint8 0..255, or floats 0..1; grayscale, or
    RGB or RGBA along a last axis of 3 or 4), ready for `grayscale`: upright as its EXIF orientation says,
    at most LARGEST_SIDE pixels on a side (shrunk before any work on the pixels; JPEGs already while
    decoding), and 16-bit or float images (modes I;16, I, F) scaled by their own range to 8 bits, which
    Pillow's convert('L') would instead clip at 255. Raises FileNotFoundError or ValueError naming the file."""
    if isinstance(source, (str, Path)):
        image = read_image_file(Path(source))
    elif isinstance(source, Image.Image):
        image = source
    else:
        image = array_image(source)
    if max(image.size) > LARGEST_SIDE:
        image = image.copy()   # the caller's image stays as it was
        image.thumbnail((LARGEST_SIDE, LARGEST_SIDE))
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
    colour = array.ndim == 3 and array.shape[2] in (3, 4)   # RGB or RGBA, as image libraries load a photo
    if not (array.ndim == 2 or colour) or not array.size:
        got = f'an array of shape {array.shape}' if isinstance(source, np.ndarray) else type(source).__name__
        raise ValueError(f'expected a picture: a file path, a PIL image or an array of pixels (height x width, '
                         f'or height x width x 3 or 4 for colour), got {got}')
    if array.dtype != np.uint8:
        array = filled(array.astype(np.float64))
        if array.max(initial=0) <= 1:
            array = array * 255
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def eight_bit(image):
    """Modes I;16*, I and F (16-bit PNGs and TIFFs, float TIFFs) as 'L', scaled by the image's
    own range: their values have no fixed white (16-bit may be 0..65535, 0..4095, ...)."""
    if image.mode not in ('I', 'F') and not image.mode.startswith('I;16'):
        return image
    values = filled(np.asarray(image, dtype=np.float64))
    low, high = values.min(), values.max()
    scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def filled(values):
    """Float pixels with the NaN or infinite ones (a float TIFF's missing values) set to the median of the
    others: taken as background, which most pixels are, rather than spoiling the whole image's range."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    return np.where(finite, values, np.median(values[finite]) if finite.any() else 0.0)


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


def light_on_dark(gray):
    """A grayscale array as light ink on dark, and its background level: the median of its border is the
    background, and a light one (paper) is inverted."""
    background = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    if background > 127:
        return 255 - gray, 255 - background
    return gray, background


def to_mnist(image):
    """The image as MNIST would have it: a 28x28 uint8 array, light ink on a dark background.

    Grayscale; a light background (judged by the median of the border pixels) is inverted and
    the background level subtracted, so ink on grey paper becomes ink on black; the ink is
    stretched to 255, cropped to its bounding box, its strokes thinned or thickened towards MNIST's
    width at its size (`restroked`), its longer side scaled to 20 px keeping the aspect ratio
    (anti-aliased), and pasted into 28x28 so that its intensity-weighted centre of mass lies where
    MNIST's does. An image that is already 28x28 is taken as an MNIST image: only inverted if its
    background is light, never cropped or moved.
    Raises BlankImageError if there is no ink."""
    gray, background = light_on_dark(grayscale(open_image(image)))
    ink = np.clip(gray - background, 0, None)
    if ink.max(initial=0) < MIN_CONTRAST:
        raise BlankImageError('no ink found: the image is blank (one flat colour or nearly so); '
                              'draw or photograph a digit')
    if gray.shape == (SIZE, SIZE):
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)

    floor = NOISE_FLOOR * ink.max()
    ink = np.clip(ink - floor, 0, None) * (255 / (ink.max() - floor))
    ink = restroked(cropped(ink))
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink.astype(np.float32), 'F').resize(size, Image.LANCZOS))
    return centred(np.clip(box, 0, 255))


def cropped(ink):
    """Ink (a 2-D array, 0 where there is none) cropped to its bounding box."""
    rows, cols = np.flatnonzero((ink > 0).any(1)), np.flatnonzero((ink > 0).any(0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def box_stroke_width(ink):
    """The width of cropped ink's strokes once its longer side is scaled to MNIST's 20-px box: the ink's
    area over half its outline, in pixels of 28."""
    mask = ink > 127
    outline = np.count_nonzero(mask & ~ndimage.minimum_filter(mask, 3, mode='nearest'))
    return 2 * np.count_nonzero(mask) / max(outline, 1) * BOX / max(ink.shape)


def restroked(ink):
    """Cropped ink whose strokes are more than a pixel of 28 off STROKE_WIDTH at MNIST's scale, brought to
    it (`thinned`, `thickened`); ink as thick as MNIST's is returned as it is."""
    width = box_stroke_width(ink)
    if width >= STROKE_WIDTH + 1:
        return thinned(ink, width - STROKE_WIDTH)
    if width <= STROKE_WIDTH - 1:
        return thickened(ink, STROKE_WIDTH - width)
    return ink


def thinned(ink, excess):
    """Ink eroded by `excess` pixels of 28 (a minimum filter, at SUPERSAMPLE x the box so that the cost is
    bounded), and cropped again: a small digit written with a thick pen opens the loops it has not quite
    filled."""
    scale = BOX * SUPERSAMPLE / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    large = np.asarray(Image.fromarray(ink.astype(np.float32), 'F').resize(size, Image.LANCZOS))
    eroded = ndimage.minimum_filter(large, 2 * int(excess * SUPERSAMPLE / 2) + 1, mode='nearest')
    if eroded.max() <= 0:
        return ink
    return cropped(np.clip(eroded, 0, None))


def thickened(ink, shortfall):
    """Ink dilated by `shortfall` pixels of 28: a fine pen's lines, which shrinking into the box would leave
    faint hairlines, as thick as MNIST's. First shrunk to between SUPERSAMPLE and twice that times the box
    (if larger) by the maximum of each block of pixels, so that no line fades and the cost is bounded."""
    block = max(1, max(ink.shape) // (BOX * SUPERSAMPLE))
    rows, cols = -(-ink.shape[0] // block) * block, -(-ink.shape[1] // block) * block
    padded = np.pad(ink, ((0, rows - ink.shape[0]), (0, cols - ink.shape[1])))
    large = padded.reshape(rows // block, block, cols // block, block).max((1, 3)).astype(np.float32)
    return ndimage.maximum_filter(large, 2 * round(shortfall * max(large.shape) / BOX / 2) + 1, mode='nearest')


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
    """The drawing as the app's canvas shows it: white ink on black, size x size (or a (width, height)
    pair: the app's writing area for numbers), `brush` pixels wide."""
    image = Image.new('L', size if isinstance(size, tuple) else (size, size), 0)
    draw_pieces(ImageDraw.Draw(image), strokes, brush)
    return image


def stroke_points(strokes):
    """Each stroke's points as an (n, 2) float array, or a ValueError that says which stroke or point is not
    what a drawing holds: a list of strokes, each a list of (x, y) points of finite numbers."""
    arrays = []
    for i, stroke in enumerate(strokes):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.size and (points.ndim != 2 or points.shape[1] != 2):
            raise ValueError(f'stroke {i} is not a list of (x, y) points: {str(stroke)[:60]}. A drawing is a '
                             f'list of strokes, each a list of (x, y) pairs of numbers')
        points = points.reshape(-1, 2)
        finite = np.isfinite(points).all(1)
        if not finite.all():
            k = int(np.argmin(finite))
            raise ValueError(f'stroke {i}, point {k}: {tuple(points[k].tolist())} is not two finite numbers (x, y)')
        arrays.append(points)
    return arrays


def strokes_to_mnist(strokes, width=STROKE_WIDTH):
    """A drawing as MNIST would have it, whatever brush it was drawn with: its points (canvas pixels)
    scaled so that the ink fits MNIST's 20x20 box, redrawn `width` pixels of 28 wide (about MNIST's own
    stroke), anti-aliased, and placed by centre of mass as `to_mnist` does. So a small digit drawn with
    a thick brush keeps the holes its brushed image has filled in.
    Raises TooSmallError when the points span less than MIN_DRAWING canvas pixels (a click, a dot), and
    ValueError (`stroke_points`) when they are not (x, y) pairs of finite numbers."""
    points = np.concatenate([np.zeros((0, 2)), *stroke_points(strokes)])
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
