"""Where the digits of a written number may be: candidate groups of a drawing's strokes or of a picture's ink,
each made into a model input. predict.DigitClassifier.read scores every candidate in one forward pass and
picks the grouping the model reads best.

People write a number digit by digit, so in a drawing a digit is a run of consecutive strokes (a 4, a 5 or a
crossed 7 takes two). In a picture there is no order: the units are the connected pieces of ink, left to
right, and a digit is a run of neighbouring pieces (a 5 whose bar does not touch its body is two); a wide
piece is cut where digits that touch may join. A unit much lower than the writing is high (a decimal point,
a minus sign, the bar of a 7) is a mark: it may join a digit, never be one alone.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from preprocess import MIN_DRAWING, TooSmallError, grayscale, strokes_to_mnist, to_mnist

MAX_UNITS = 3        # a digit is at most 3 strokes (the drawn digits: 463 in one, 136 in two, 1 in three)
MAX_WIDTH = 1.5      # a candidate wider than this times the writing's height holds more than one digit
APART = 0.25         # a unit this far (of the writing's height) right or left of a run's ink starts another digit
                     # (within a drawn digit the strokes are at most 0.15 of its height apart: a 4's bar)
MARK_HEIGHT = 0.35   # a unit lower than this part of the writing's height is a mark, not a digit alone
CUT_WIDTH = 0.7      # a piece of ink wider than this times the writing's height may be digits that touch,
SLICE = 0.25         # and is cut at its thinnest columns, this much of the height apart,
DIGIT_WIDTH = 0.5    # once for each digit's width (of the height) it may hold past the first
THIN = 0.9           # and only where its ink is thinner than this part of its median column: a bar is no digits
INK_LEVEL = 0.35     # of the brightest ink: what counts as ink when pieces are found in a picture


@dataclass
class Candidate:
    """A run of units [start, end) that may be one digit: its box (x0, y0, x1, y1) in the drawing's
    coordinates, and its 28x28 model input (None when it cannot be a digit alone: a mark, too small)."""
    start: int
    end: int
    box: tuple
    model_input: np.ndarray = None


@dataclass
class Units:
    """What a drawing or picture is made of, in the order read: the units' boxes, which are marks, and
    the candidate digits; `members[i]` are the indices unit i stands for (its stroke in the drawing as
    given, or itself: the pieces of ink left to right)."""
    boxes: list
    marks: list
    candidates: list
    members: list


def union(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())


def stroke_box(stroke):
    points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
    return (*points.min(0), *points.max(0))


def runs(boxes, marks, render):
    """Every run of at most MAX_UNITS consecutive units narrower than MAX_WIDTH times the writing's height,
    each unit at most APART from the ink before it (each single unit always), made into a model input by
    render(start, end) unless it is all marks."""
    whole = union(boxes)
    height = max(whole[3] - whole[1], 1)
    candidates = []
    for start in range(len(boxes)):
        for end in range(start + 1, min(start + MAX_UNITS, len(boxes)) + 1):
            box = union(boxes[start:end])
            if end - start > 1:
                before, added = union(boxes[start:end - 1]), boxes[end - 1]
                if max(added[0] - before[2], before[0] - added[2]) > APART * height or \
                        box[2] - box[0] > MAX_WIDTH * height:
                    break
            if all(marks[start:end]):
                candidates.append(Candidate(start, end, box))
                continue
            try:
                candidates.append(Candidate(start, end, box, render(start, end)))
            except TooSmallError:
                candidates.append(Candidate(start, end, box))
    return candidates


def mark_flags(boxes):
    """Which units are much lower than the whole writing (MARK_HEIGHT): never a digit alone. The tallest
    unit never is: a lone horizontal line is read, and judged not a digit."""
    box = union(boxes)
    height = box[3] - box[1]
    return [b[3] - b[1] < MARK_HEIGHT * height for b in boxes]


def stroke_units(strokes):
    """The candidate digits of a drawing (strokes of (x, y) points, any scale): runs of consecutive
    strokes, each drawn by preprocess.strokes_to_mnist at its own scale. Raises TooSmallError when the
    whole drawing spans less than preprocess.MIN_DRAWING pixels, as strokes_to_mnist does."""
    kept = [i for i, stroke in enumerate(strokes) if len(stroke)]
    strokes = [list(strokes[i]) for i in kept]
    if not strokes:
        raise TooSmallError('nothing is drawn: draw a digit or a number')
    boxes = [stroke_box(stroke) for stroke in strokes]
    whole = union(boxes)
    if max(whole[2] - whole[0], whole[3] - whole[1]) < MIN_DRAWING:
        strokes_to_mnist(strokes)  # raises its TooSmallError, with its message
    marks = mark_flags(boxes)
    candidates = runs(boxes, marks, lambda start, end: strokes_to_mnist(strokes[start:end]))
    return Units(boxes, marks, candidates, [[i] for i in kept])


# ---------------------------------------------------------------- pictures

def ink(image):
    """A picture's ink as floats 0..255, light on dark whatever the paper (the border's median is the
    background, as preprocess.to_mnist judges it)."""
    gray = grayscale(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = np.median(border)
    if background > 127:
        gray, background = 255 - gray, 255 - background
    return np.clip(gray - background, 0, None)


def pieces(mask):
    """The pieces of ink in a boolean mask, left to right: (box, the mask within the box). A wide piece is
    cut at its thinnest columns (`cuts`): the ink of that column is removed and what falls apart are pieces
    of their own (digits that touch at a point part there cleanly)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    rows = np.flatnonzero(mask.any(1))
    height = rows[-1] - rows[0] + 1
    units = []
    for label, (top, left) in enumerate(ndimage.find_objects(labels), 1):
        part = labels[top, left] == label
        for x in cuts(part, height):
            part[:, x] = False
        parts, _ = ndimage.label(part, structure=np.ones((3, 3)))
        for k, (r, c) in enumerate(ndimage.find_objects(parts), 1):
            box = (left.start + c.start, top.start + r.start, left.start + c.stop, top.start + r.stop)
            units.append((box, parts[r, c] == k))
    return sorted(units, key=lambda unit: unit[0][0] + unit[0][2])


def cuts(part, height):
    """Where a piece of ink wider than CUT_WIDTH times the writing's height may be cut into digits that
    touch: at most one column per DIGIT_WIDTH of its width past the first, each the one with the least ink
    within SLICE times the height either side and thinner than THIN times the piece's median column (digits meet
    where the ink is thin; a bar of even thickness is not cut), thinnest first."""
    width = part.shape[1]
    reach = max(1, int(SLICE * height))
    if width <= CUT_WIDTH * height:
        return []
    column_ink = part.sum(0).astype(np.float64)
    counts = ndimage.uniform_filter1d(column_ink, max(1, reach // 4))[reach:width - reach]
    thinnest = np.flatnonzero((ndimage.minimum_filter1d(counts, 2 * reach + 1, mode='nearest') == counts)
                              & (counts < THIN * np.median(column_ink[column_ink > 0])))
    chosen = []
    for x in sorted(thinnest, key=lambda x: counts[x]):
        if all(abs(x - c) > reach for c in chosen) and len(chosen) < round(width / (DIGIT_WIDTH * height)) - 1:
            chosen.append(x)
    return sorted(int(x) + reach for x in chosen)


def image_units(image):
    """The candidate digits of a picture (a PIL image, already opened by preprocess.open_image): runs of
    neighbouring pieces of ink, each prepared by preprocess.to_mnist on that ink alone (all of them: the
    whole picture, exactly as predict reads it). Raises preprocess.BlankImageError when there is no ink."""
    light = ink(image)
    if light.max(initial=0) == 0:
        to_mnist(image)  # raises its BlankImageError
    units = pieces(light > INK_LEVEL * light.max())
    boxes = [box for box, _ in units]

    def render(start, end):
        if end - start == len(units):
            return to_mnist(image)
        x0, y0, x1, y1 = (int(v) for v in union(boxes[start:end]))
        keep = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for (left, top, right, bottom), part in units[start:end]:
            keep[top - y0:bottom - y0, left - x0:right - x0] |= part
        crop = np.where(keep, light[y0:y1, x0:x1], 0)
        margin = 3 + (crop.shape == (22, 22))   # never 28x28: to_mnist would take it as an MNIST image
        return to_mnist(np.pad(crop, margin).clip(0, 255).astype(np.uint8))

    marks = mark_flags(boxes)
    return Units(boxes, marks, runs(boxes, marks, render), [[i] for i in range(len(units))])
