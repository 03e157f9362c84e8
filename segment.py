"""Where the digits of a written number may be: candidate groups of a drawing's strokes or of a picture's ink,
each made into a model input. predict.DigitClassifier.read scores every candidate in one forward pass and
picks the grouping the model reads best.

People write a number digit by digit, so in a drawing a digit is a run of consecutive strokes (a 4, a 5 or a
crossed 7 takes two). In a picture there is no order: the units are the connected pieces of ink, left to
right, and a digit is a run of neighbouring pieces (a 5 whose bar does not touch its body is two); a wide
piece is cut along seams where digits that touch or overlap may join, and a run that reads unsure may be
cut in two straight down (`straight_splits`), where digits overlap too far for a seam to part them. A unit
much lower than the writing is high (a decimal point, a minus sign, the bar of a 7) is a mark: it may join a
digit, never be one alone; marks that together stand as high as a digit may be one (an 8 of two small
loops), unless a seam cut them from other ink.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from preprocess import (MIN_DRAWING, TooSmallError, cropped, grayscale, light_on_dark, stroke_points, strokes_to_mnist,
                        to_mnist)

MAX_STROKES = 3      # a digit is at most 3 strokes (the drawn digits: 463 in one, 136 in two, 1 in three),
MAX_PIECES = 4       # or 4 pieces of ink in a picture, whose seams may part a digit's ink as well
MAX_WIDTH = 1.5      # a candidate wider than this times the writing's height holds more than one digit
APART = 0.25         # a unit this far (of the writing's height) right or left of a run's ink starts another digit
                     # (within a drawn digit the strokes are at most 0.15 of its height apart: a 4's bar)
RESUME = 0.05        # a stroke that begins this close (of the writing's height) to where the one before it
                     # ended continues it (dev half: 0 of 452 later strokes of a digit, 3 of 1,500 first strokes
                     # of the next digit in `evaluate.py --numbers`' strokes)
MARK_HEIGHT = 0.35   # a unit lower than this part of the writing's height is a mark, not a digit alone
CUT_WIDTH = 0.7      # a piece of ink wider than this times the writing's height may be digits that touch,
SLICE = 0.25         # and is cut along paths that stray at most this much of the height from where they start,
DIGIT_WIDTH = 0.25   # at most one for each this much of the height its width holds,
CUT_INK = 1.6        # each crossing at most this many strokes' thickness of ink, started where a column's ink
THIN = 0.9           # is thinner than this part of the piece's median column: a bar of even thickness is no digits
WIDE = 1.0           # a piece wider than the writing is high is more likely digits than one, joined along a
WIDE_CUT_INK = 3.0   # stroke or crossing: its paths may cross this much ink, started where a column's ink is
WIDE_THIN = 1.0      # thinner than this part of the median
SLIVER = 1.0         # what cutting leaves of less ink than this many squares of a stroke's thickness is dropped
# (WIDE to SLIVER and MAX_PIECES: dev pictures, seeds 0-2, 1,500 numbers: read right 89.3% -> 90.1%, digits
# counted right 95.2% -> 95.9%; the same at WIDE 1.1 or WIDE_CUT_INK 2.5-4, 0.3 points fewer at WIDE 0.9, 0.1
# fewer keeping slivers, 0.4 fewer with at most 3 pieces a digit; 0.9, THIN's value, for WIDE_THIN gains nothing)
STEP_COST = 0.2      # a path's cost per pixel it moves sideways (its ink crossed costs 1 a pixel)
SPLIT_WIDTH = 0.5    # a run of pieces read unsure and wider than this part of the writing's height may be two
SPLIT_STEP = 0.05    # digits that overlap, which no seam parts: `straight_splits` tries it cut straight down
                     # every SPLIT_STEP of the height (dev pictures, seeds 0-2: 92.5% read right; 92.7% every
                     # 0.03, 92.4% from a width of 0.7, and 92.2% with each side keeping 0.05 of the height past
                     # the cut)
INK_LEVEL = 0.35     # of the brightest ink: what counts as ink when pieces are found in a picture


@dataclass
class Candidate:
    """A run of units [start, end) that may be one digit: its box (x0, y0, x1, y1) in the drawing's
    coordinates, and its 28x28 model input (None when it cannot be a digit alone: a mark, too small)."""
    start: int
    end: int
    box: tuple
    model_input: np.ndarray = None
    cut: bool = False        # whether a seam parts it from ink beside it (pictures): it may be a piece of a digit
    apart: bool = False      # whether empty columns part its ink (pictures): two things side by side
    extra_strokes: int = 0   # strokes past the two a digit takes at most but rarely (drawings)


@dataclass
class Units:
    """What a drawing or picture is made of, in the order read: the units' boxes, which are marks, and
    the candidate digits; `members[i]` are the indices unit i stands for (its stroke in the drawing as
    given, or itself: the pieces of ink left to right)."""
    boxes: list
    marks: list
    candidates: list
    members: list
    continues: list          # whether unit i begins where unit i-1 ends: a pen lifted within a stroke (drawings;
                             # never in a picture)
    split: object = None     # pictures: split(start, end), the `straight_splits` of the run's ink


def union(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())


def stroke_box(stroke):
    points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
    return (*points.min(0), *points.max(0))


def runs(boxes, render, most):
    """Every run of at most `most` consecutive units narrower than MAX_WIDTH times the writing's height,
    each unit at most APART from the ink before it (each single unit always), made into a model input by
    render(start, end) (None: not a digit alone) unless the run's ink is a mark (`is_mark`), as two marks
    together may not be: an 8 of two small loops."""
    whole = union(boxes)
    height = max(whole[3] - whole[1], 1)
    candidates = []
    for start in range(len(boxes)):
        for end in range(start + 1, min(start + most, len(boxes)) + 1):
            box = union(boxes[start:end])
            if end - start > 1:
                before, added = union(boxes[start:end - 1]), boxes[end - 1]
                if max(added[0] - before[2], before[0] - added[2]) > APART * height or \
                        box[2] - box[0] > MAX_WIDTH * height:
                    break
            if is_mark(box, whole):
                candidates.append(Candidate(start, end, box))
                continue
            try:
                candidates.append(Candidate(start, end, box, render(start, end)))
            except TooSmallError:
                candidates.append(Candidate(start, end, box))
    return candidates


def is_mark(box, whole):
    """Whether ink in `box` is much lower than the `whole` writing (MARK_HEIGHT): never a digit alone. The
    tallest ink never is: a lone horizontal line is read, and judged not a digit."""
    return box[3] - box[1] < MARK_HEIGHT * (whole[3] - whole[1])


def stroke_units(strokes):
    """The candidate digits of a drawing (strokes of (x, y) points, any scale): runs of consecutive
    strokes, each drawn by preprocess.strokes_to_mnist at its own scale. Raises TooSmallError when the
    whole drawing spans less than preprocess.MIN_DRAWING pixels, as strokes_to_mnist does, and ValueError
    when a stroke is not a list of (x, y) points (preprocess.stroke_points)."""
    points = stroke_points(strokes)
    kept = [i for i, stroke in enumerate(points) if len(stroke)]
    strokes = [points[i] for i in kept]
    if not strokes:
        raise TooSmallError('nothing is drawn: draw a digit or a number')
    boxes = [stroke_box(stroke) for stroke in strokes]
    whole = union(boxes)
    if max(whole[2] - whole[0], whole[3] - whole[1]) < MIN_DRAWING:
        strokes_to_mnist(strokes)  # raises its TooSmallError, with its message
    marks = [is_mark(box, whole) for box in boxes]
    candidates = runs(boxes, lambda start, end: strokes_to_mnist(strokes[start:end]), MAX_STROKES)
    for c in candidates:
        c.extra_strokes = max(0, c.end - c.start - 2)
    reach = RESUME * max(whole[3] - whole[1], 1)
    continues = [False] + [math.dist(after[0], before[-1]) <= reach for before, after in zip(strokes, strokes[1:])]
    return Units(boxes, marks, candidates, [[i] for i in kept], continues)


# ---------------------------------------------------------------- pictures

def ink(image):
    """A picture's ink as floats 0..255, light on dark whatever the paper (preprocess.light_on_dark, as
    preprocess.to_mnist judges it)."""
    gray, background = light_on_dark(grayscale(image))
    return np.clip(gray - background, 0, None)


def pieces(mask):
    """The pieces of ink in a boolean mask, left to right, and which of them a seam parted: ([(box, the mask
    within the box)], {(i, j) for pieces i, j cut apart}). A wide piece is cut along its `seams`; what falls
    apart are pieces of their own, which a run may join again, but for slivers (SLIVER)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    rows = np.flatnonzero(mask.any(1))
    height = rows[-1] - rows[0] + 1
    units, cut = [], set()
    for label, (top, left) in enumerate(ndimage.find_objects(labels), 1):
        whole = labels[top, left] == label
        paths, thickness = seams(whole, height)
        part = whole.copy()
        for path in paths:
            y = np.arange(len(path))
            part[y, path] = part[y, np.minimum(path + 1, part.shape[1] - 1)] = False
        parts, count = ndimage.label(part, structure=np.ones((3, 3)))
        if paths:   # ink left between two seams close together is no part of a digit
            sizes = ndimage.sum_labels(part, parts, np.arange(1, count + 1))
            part &= np.isin(parts, 1 + np.flatnonzero(sizes >= SLIVER * thickness ** 2))
            parts, _ = ndimage.label(part, structure=np.ones((3, 3)))
        cut |= {(len(units) + a - 1, len(units) + b - 1) for path in paths for a, b in parted(whole, parts, path)}
        for k, (r, c) in enumerate(ndimage.find_objects(parts), 1):
            box = (left.start + c.start, top.start + r.start, left.start + c.stop, top.start + r.stop)
            units.append((box, parts[r, c] == k))
    order = sorted(range(len(units)), key=lambda i: units[i][0][0] + units[i][0][2])
    rank = {old: new for new, old in enumerate(order)}
    return [units[i] for i in order], {(rank[a], rank[b]) for a, b in cut}


def parted(whole, parts, path):
    """The pairs of pieces (labels in `parts`) whose ink a seam cut through, left and right of it."""
    y, last = np.arange(len(path)), whole.shape[1] - 1
    crossing = whole[y, path] | whole[y, np.minimum(path + 1, last)]
    left, right = parts[y, np.maximum(path - 1, 0)][crossing], parts[y, np.minimum(path + 2, last)][crossing]
    return {(a, b) for a, b in zip(left, right) if a and b and a != b}


def stroke_width(part):
    """The ink's typical thickness in pixels: twice the median distance to the background along its ridges."""
    distance = ndimage.distance_transform_edt(part)
    ridge = part & (distance == ndimage.maximum_filter(distance, 3))
    return 2 * np.median(distance[ridge])


def seams(part, height):
    """Where a piece of ink wider than CUT_WIDTH times the writing's height may be digits that touch or
    overlap: top-to-bottom paths (a column per row, moving at most one pixel a row and at most SLICE times
    the height from where they start) that cross the least ink, started at the columns of least ink. A path
    is kept when it crosses at most CUT_INK strokes' thickness (WIDE_CUT_INK in a piece wider than WIDE
    times the height: most likely digits joined along a stroke), at most one per DIGIT_WIDTH; the
    classifier then judges which pieces make digits. Returns the paths and the ink's `stroke_width` (None
    when there are no paths to find)."""
    width = part.shape[1]
    reach = max(1, int(SLICE * height))
    if width <= CUT_WIDTH * height or width <= 2 * reach:
        return [], None
    thin, most_ink = (WIDE_THIN, WIDE_CUT_INK) if width > WIDE * height else (THIN, CUT_INK)
    column_ink = ndimage.uniform_filter1d(part.sum(0).astype(np.float64), max(1, reach // 4))
    starts = np.flatnonzero((ndimage.minimum_filter1d(column_ink, reach + 1) == column_ink)
                            & (column_ink < thin * np.median(column_ink[column_ink > 0])))
    starts = starts[(starts >= reach) & (starts < width - reach)]
    if not len(starts):
        return [], None
    thickness = stroke_width(part)
    band = starts[:, None] + np.arange(-reach, reach + 1)
    cost, came_from = cheapest_paths(part[:, band])
    ends = cost.argmin(1)
    paths = []
    for k in np.argsort(cost[np.arange(len(starts)), ends]):
        if cost[k, ends[k]] > most_ink * thickness or len(paths) >= width / (DIGIT_WIDTH * height):
            break
        at = [ends[k]]
        for step in came_from[::-1]:
            at.append(at[-1] + step[k, at[-1]])
        path = band[k, at[::-1]]
        if all(np.abs(path - other).mean() > reach / 2 for other in paths):
            paths.append(path)
    return paths, thickness


def has_gap(spans):
    """Whether more columns than a seam's two, between the first span's start and the last one's end, are in
    none of the spans [start, stop)."""
    (_, reach), *rest = sorted(spans)
    for start, stop in rest:
        if start > reach + 2:
            return True
        reach = max(reach, stop)
    return False


def cheapest_paths(bands):
    """Dynamic programming down the rows of `bands` (rows, bands, columns of a band; 1 where there is ink):
    the least ink crossed (plus STEP_COST a sideways pixel) by a path from the top row to each column of the
    bottom row, moving at most one column a row, and for each row after the first the step (-1, 0, 1) that
    reached each column."""
    cost, came_from = bands[0].astype(np.float64), []
    moved = np.empty((3,) + cost.shape)
    for row in bands[1:]:
        moved[:] = np.inf
        moved[0, :, 1:] = cost[:, :-1] + STEP_COST
        moved[1] = cost
        moved[2, :, :-1] = cost[:, 1:] + STEP_COST
        came_from.append(moved.argmin(0) - 1)
        cost = moved.min(0) + row
    return cost, came_from


def image_units(image):
    """The candidate digits of a picture (a PIL image, already opened by preprocess.open_image): runs of
    neighbouring pieces of ink, each prepared by preprocess.to_mnist on that ink alone (all of them: the
    whole picture, exactly as predict reads it). Raises preprocess.BlankImageError when there is no ink."""
    light = ink(image)
    if light.max(initial=0) == 0:
        to_mnist(image)  # raises its BlankImageError
    units, cut = pieces(light > INK_LEVEL * light.max())
    boxes = [box for box, _ in units]

    def run_ink(start, end):   # the ink of the run of pieces [start, end): light and mask over its box, its corner
        x0, y0, x1, y1 = (int(v) for v in union(boxes[start:end]))
        keep = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for (left, top, right, bottom), piece in units[start:end]:
            keep[top - y0:bottom - y0, left - x0:right - x0] |= piece
        return light[y0:y1, x0:x1], keep, (x0, y0)

    def severed(start, end):   # whether a seam cut the run's ink from ink outside it
        return any((start <= i < end) != (start <= j < end) for i, j in cut)

    def render(start, end):   # marks a seam cut from other ink are bits of digits, not two loops of an 8 (dev
        if severed(start, end) and all(marks[start:end]):   # pictures, seeds 0-2: 1 of 1,500 misread): no input
            return None
        return to_mnist(image) if end - start == len(units) else prepared(*run_ink(start, end)[:2])

    whole = union(boxes)
    marks = [is_mark(box, whole) for box in boxes]
    candidates = runs(boxes, render, MAX_PIECES)
    for c in candidates:
        c.cut = severed(c.start, c.end)
        c.apart = has_gap([box[0::2] for box in boxes[c.start:c.end]])
    split = lambda start, end: straight_splits(*run_ink(start, end), whole[3] - whole[1], start, end)
    return Units(boxes, marks, candidates, [[i] for i in range(len(units))], [False] * len(units), split)


def prepared(light, keep):
    """The model input of the ink of `light` where `keep` is set, alone: preprocess.to_mnist of its box."""
    crop = cropped(np.where(keep, light, 0))   # all of `keep` is ink: brighter than INK_LEVEL of the brightest
    margin = 3 + (crop.shape == (22, 22))   # never 28x28: to_mnist would take it as an MNIST image
    return to_mnist(np.pad(crop, margin).clip(0, 255).astype(np.uint8))


def straight_splits(light, keep, corner, height, start, end):
    """The ink of run [start, end) of a picture whose writing is `height` high (`light` where `keep` is set, the
    run's box from `corner`) cut in two straight down, every SPLIT_STEP of the height at least a quarter of it
    from either side: two digits that overlap share columns, which no seam parts without leaving a piece of one
    with the other, while a straight cut leaves each side most of its digit. [(left, right) Candidates]."""
    cols = np.flatnonzero(keep.any(0))
    left, right = cols[0], cols[-1] + 1
    return [(part(light, keep, corner, left, at, start, end), part(light, keep, corner, at, right, start, end))
            for at in np.arange(left + height / 4, right - height / 4 + 1, SPLIT_STEP * height).astype(int)]


def part(light, keep, corner, a, b, start, end):
    """The Candidate of run [start, end) that is its ink within columns [a, b) of its box: a piece cut from it."""
    inside = np.zeros_like(keep)
    inside[:, a:b] = keep[:, a:b]
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    box = (corner[0] + cols[0], corner[1] + rows[0], corner[0] + cols[-1] + 1, corner[1] + rows[-1] + 1)
    return Candidate(start, end, box, prepared(light, inside), cut=True)
