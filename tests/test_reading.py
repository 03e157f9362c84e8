"""predict.DigitClassifier.read: numbers written stroke by stroke (or pictured) are grouped into digits by
how well the model reads each group (segment.py finds the candidates)."""
import dataclasses
import math

import numpy as np
import pytest

import evaluate
import predict
import preprocess
import segment
from support import DIGITS, SCRIBBLE, resized

CROSSED_SEVEN = DIGITS[7] + [[(125, 150), (185, 150)]]   # the bar across a 7, a second stroke


@pytest.fixture(scope='module')
def model():
    return predict.load_model()


def written(digits, height=110, step=110, drop=0):
    """Digits (a digit, or a list of strokes) written left to right `step` pixels apart, each `height` tall,
    every other one `drop` pixels lower (a wobbly baseline)."""
    strokes = []
    for i, digit in enumerate(digits):
        drawing = DIGITS[digit] if isinstance(digit, int) else digit
        strokes += resized(drawing, height, centre=(80 + step * i, 140 + drop * (i % 2)))
    return strokes


def test_one_digit_reads_exactly_as_predict_strokes(model):
    for digit, strokes in DIGITS.items():
        reading, prediction = model.read(strokes), model.predict_strokes(strokes)
        assert reading.number == str(digit) == str(prediction.digit)
        assert reading.groups == [list(range(len(strokes)))] and len(reading.digits) == 1
        assert np.array_equal(reading.digits[0].model_input, prediction.model_input)
        assert reading.confidence == pytest.approx(prediction.confidence, abs=1e-6)
        assert reading.verdict == predict.SURE == prediction.verdict


@pytest.mark.parametrize('number', ['2026', '12', '47', '35', '23', '1111', '907', '4545'])
def test_numbers_with_gaps(model, number):
    reading = model.read(written([int(d) for d in number]))
    assert reading.number == number and reading.verdict == predict.SURE, reading
    assert 0.8 <= reading.confidence <= min(p.confidence for p in reading.digits)


@pytest.mark.parametrize('step', [80, 70])  # digits 110 px tall and about 80 wide: touching, then overlapping
@pytest.mark.parametrize('number', ['2026', '35', '12', '47'])
def test_touching_and_overlapping_digits(model, number, step):
    assert model.read(written([int(d) for d in number], step=step, drop=6)).number == number


def test_multi_stroke_digits_are_grouped(model):
    """A 4 in two strokes, a crossed 7, a 1 written close before another digit."""
    reading = model.read(written([4, 7, CROSSED_SEVEN, 1, 5], step=95))
    assert reading.number == '47715'
    assert reading.groups == [[0, 1], [2], [3, 4], [5], [6]]
    assert model.read(CROSSED_SEVEN).number == '7'


def test_a_stroke_the_pen_was_lifted_from_and_went_on_with_stays_one_digit(model):
    """A drawn 1 (writer W02 of the choosing half: up, then back down) with the pen lifted half way and put
    down where it left off, alone and after a 3: two strokes that each read as a 1."""
    one = next(d['strokes'][0] for d in evaluate.load_drawn()['dev'] if d['writer'] == 'W02' and d['label'] == 1)
    half = len(one) // 2
    lifted = [one[:half + 1], one[half:]]
    assert model.read(lifted).number == '1'
    three = resized(DIGITS[3], 600, centre=(200, 950))
    assert model.read(three + lifted).number == '31'


def test_a_0_closed_by_a_second_stroke_stays_one_digit(model):
    """A drawn 0 (writer W10's second, of the choosing half) written as most of its loop and then its last
    part again, from the top: a second stroke that pokes a little out of the first's columns and alone reads
    as a 1."""
    loop = [d['strokes'][0] for d in evaluate.load_drawn()['dev'] if d['writer'] == 'W10' and d['label'] == 0][1]
    cut = int(len(loop) * 0.85)
    closed = [loop[:cut], loop[cut - 1:][::-1]]
    assert model.classify([preprocess.strokes_to_mnist(closed[1:])])[0].digit == 1
    assert model.read(closed).number == '0'
    assert model.read(resized(DIGITS[3], 600, centre=(200, 950)) + closed).number == '30'


def test_boxes_are_the_groups_ink(model):
    strokes = written([1, 2])
    reading = model.read(strokes)
    for group, box in zip(reading.groups, reading.boxes):
        points = np.array([p for i in group for p in strokes[i]])
        assert box == (*points.min(0), *points.max(0))


@pytest.mark.parametrize('mark', ['point', 'minus'])
def test_decimal_points_and_minus_signs_never_become_digits(model, mark):
    three, five = resized(DIGITS[3], 110, centre=(80, 140)), resized(DIGITS[5], 110, centre=(220, 140))
    if mark == 'point':
        strokes = three + [[(148, 190), (151, 193), (149, 195)]] + five
    else:
        strokes = [[(10, 140), (45, 140)]] + three + five
    reading = model.read(strokes)
    assert reading.number == '35'
    assert all(set(group) != {1 if mark == 'point' else 0} for group in reading.groups)


def test_an_8_of_two_small_loops_after_a_tall_1_is_read(model):
    """Each loop of the 8 is lower than segment.MARK_HEIGHT of the writing, a mark; the two together are not."""
    def loop(centre_y, r=18):   # a circle drawn from its top, 40 points
        return [(round(120 + r * math.sin(t * math.pi / 20)), round(centre_y - r * math.cos(t * math.pi / 20)))
                for t in range(41)]
    one, eight = [[(40, 20), (40, 140)]], [loop(86), loop(122)]
    assert segment.stroke_units(one + eight).marks == [False, True, True]
    reading = model.read(one + eight)
    assert reading.number == '18' and reading.groups == [[0], [1, 2]]


@pytest.mark.parametrize('index, number, squeezed', [(1650, '16789', '6789'), (1977, '78107', '7867')])
def test_two_digits_squeezed_into_one_group_cost_their_energy(model, index, number, squeezed, monkeypatch):
    """Dev numbers of the finer benchmark (seed 0) whose "16" and "10" the model reads as one confident 6:
    such a group looks less like a digit to it (its energy) than each digit alone (predict.ENERGY_COST)."""
    label, digit_strokes = evaluate.compose_numbers(evaluate.load_drawn()['dev'], 500, seed=0)[index]
    strokes = [stroke for strokes in digit_strokes for stroke in strokes]
    assert label == number and model.read(strokes).number == number
    assert dataclasses.replace(model, energy_limit=math.inf).read(strokes).number == squeezed  # uncalibrated: no cost
    monkeypatch.setattr(predict, 'ENERGY_COST', 0.0)
    assert model.read(strokes).number == squeezed


def test_what_is_not_a_number(model):
    assert model.read([[(40, 140), (240, 140)]]).verdict == predict.NOT_A_NUMBER   # a lone horizontal line
    assert model.read(SCRIBBLE).verdict == predict.NOT_A_NUMBER
    assert model.read([[(140, 40), (140, 240)]]).number == '1'                    # a lone vertical line is a 1


def test_nothing_or_a_dot_is_too_small(model):
    for strokes in ([], [[]], [[(140, 140)]], [[(140, 140), (146, 150)]]):
        with pytest.raises(preprocess.TooSmallError):
            model.read(strokes)


@pytest.mark.parametrize('drawing, message', [
    ([[(0, 0), (float('nan'), 50), (10, 100)]], r'^stroke 0, point 1: \(nan, 50.0\) is not two finite numbers'),
    ([[(0, 0), (0, 100)], [(0, 0, 1), (10, 100, 1)]], r'^stroke 1 is not a list of \(x, y\) points'),
    ([[1, 2, 3]], r'^stroke 0 is not a list of \(x, y\) points'),
    (np.zeros((0, 0)), r'an array of pixels .*, got an array of shape \(0, 0\)$'),
    (np.zeros((5, 5, 2)), r'an array of pixels .*, got an array of shape \(5, 5, 2\)$'),
    (None, r'an array of pixels .*, got NoneType$'),
])
def test_what_is_neither_strokes_nor_a_picture_is_named(model, drawing, message):
    with pytest.raises(ValueError, match=message):
        model.read(drawing)
    if isinstance(drawing, list):
        with pytest.raises(ValueError, match=message):
            model.predict_strokes(drawing)


def test_empty_strokes_keep_the_indices_of_the_others(model):
    strokes = written([1, 2])
    assert model.read([[]] + strokes).groups == [[1], [2]]


def test_candidates_are_runs_of_consecutive_strokes():
    units = segment.stroke_units(written([4, 1], step=150))
    runs = {(c.start, c.end) for c in units.candidates}
    assert {(0, 1), (1, 2), (2, 3), (0, 2)} <= runs and (0, 3) not in runs   # the 1 stands apart from the 4
    assert units.marks == [False, False, False]


def test_a_picture_of_a_number(model):
    strokes = written([2, 0, 2, 6], step=120)
    reading = model.read(preprocess.draw_strokes(strokes, 20, (620, 280)))
    assert reading.number == '2026' and reading.verdict == predict.SURE
    assert [round(box[0] / 120) for box in reading.boxes] == [0, 1, 2, 3]


def test_a_fine_pen_on_paper_is_read(model):
    """A photo of a note: dark lines 2 px wide on grey paper, digits 165 px tall (each shrinks into a 20-px
    box, where its lines would be hairlines but for preprocess.thickened)."""
    strokes = [[(1.5 * x, 1.5 * y) for x, y in stroke] for stroke in written([2, 0, 2, 6], step=120)]
    paper = 200 - 0.6 * np.asarray(preprocess.draw_strokes(strokes, 2, (930, 420)), dtype=np.float64)
    reading = model.read(paper.astype(np.uint8))
    assert reading.number == '2026' and reading.verdict == predict.SURE


def test_a_picture_of_touching_digits_is_cut(model):
    picture = preprocess.draw_strokes(written([1, 2], step=75), 20, (400, 280))
    assert model.read(picture).number == '12'


def test_bits_of_digits_a_seam_cut_off_are_not_one_digit_together(model):
    """A dev number of the benchmark (seed 1) whose 2 overlaps its 7: seams leave the 2's tail and the 7's
    corner as two low pieces (marks), which together would read as a 5."""
    label, digit_strokes = evaluate.compose_numbers(evaluate.load_drawn()['dev'], 100, seed=1, ink=20)[452]
    picture = evaluate.number_canvas([stroke for strokes in digit_strokes for stroke in strokes], 20)
    units = segment.image_units(preprocess.open_image(picture))
    assert label == '327327' and units.marks[2:4] == [True, True]
    assert model.read(picture).number == label


@pytest.mark.parametrize('step', [80, 70])  # as in test_touching_and_overlapping_digits, with the app's brush
@pytest.mark.parametrize('number', ['35', '47', '1111', '4545'])
def test_a_picture_of_touching_and_overlapping_digits(model, number, step):
    strokes = written([int(d) for d in number], step=step, drop=6)
    picture = preprocess.draw_strokes(strokes, 20, (140 + step * len(number), 280))
    assert model.read(picture).number == number


@pytest.mark.parametrize('number', ['35', '12', '36', '90'])
def test_a_picture_of_digits_overlapping_where_no_seam_parts_them_is_cut_straight(model, number, monkeypatch):
    """Digits 110 px tall written 55 px apart share columns that no seam parts well, so the group holding both
    reads unsure and is tried cut in two straight down (segment.straight_splits, predict.SPLIT_GAIN)."""
    picture = preprocess.draw_strokes(written([int(d) for d in number], step=55, drop=6), 20, (300, 280))
    reading = model.read(picture)
    assert reading.number == number and reading.groups[0] == reading.groups[1]   # halves of one group
    assert reading.boxes[0][2] == reading.boxes[1][0]   # cut straight: the left half ends where the right begins
    monkeypatch.setattr(predict, 'SPLIT_GAIN', math.inf)
    assert model.read(picture).number == '?'


def test_straight_splits_cut_a_run_of_pieces_in_two():
    light = np.zeros((100, 160))
    light[10:90, 20:30] = light[10:90, 120:130] = light[45:55, 20:130] = 255   # an H, 110 px wide
    units = segment.image_units(preprocess.open_image(light.astype(np.uint8)))
    pairs = units.split(0, len(units.boxes))
    cuts = [left.box[2] for left, _ in pairs]
    assert cuts == sorted(cuts) and cuts[0] >= 20 + 80 / 4 and cuts[-1] <= 130 - 80 / 4   # a quarter of the height in
    assert np.allclose(np.diff(cuts), segment.SPLIT_STEP * 80, atol=1)
    for left, right in pairs:
        assert left.box[0] == 20 and right.box[2] == 130 and left.box[2] == right.box[0]
        assert left.cut and right.cut and left.model_input.shape == right.model_input.shape == (28, 28)


@pytest.mark.parametrize('seed, number', [(0, '68'), (0, '304'), (0, '657'), (0, '60705'), (1, '76510')])
def test_a_picture_of_digits_joined_along_a_stroke(model, seed, number):
    """Numbers of `evaluate.py --numbers` from the choosing half whose picture holds digits that touch along a
    stroke or cross, so that a seam parting them crosses much ink (segment.WIDE), or leaves slivers between
    seams (segment.SLIVER), or parts a digit in four pieces (segment.MAX_PIECES)."""
    numbers = evaluate.compose_numbers(evaluate.load_drawn()['dev'], 100, seed, ink=evaluate.pen('image'))
    digit_strokes = next(strokes for label, strokes in numbers if label == number)
    assert evaluate.read_number(model, digit_strokes, 'image').number == number


def test_a_bar_of_even_thickness_is_not_cut():
    bar = np.zeros((60, 400), dtype=bool)
    bar[20:40, 20:380] = True
    units, cut = segment.pieces(bar)
    assert [box for box, _ in units] == [(20, 20, 380, 40)] and cut == set()


def test_pieces_apart_are_parted_by_more_than_a_seam():
    assert segment.has_gap([(0, 10), (14, 20)]) and segment.has_gap([(30, 40), (0, 10), (5, 20)])
    assert not segment.has_gap([(0, 10), (12, 20)]) and not segment.has_gap([(0, 10), (5, 20)])


def test_a_picture_of_one_digit_reads_as_predict(model):
    picture = preprocess.draw_strokes(DIGITS[4], 20)
    reading, prediction = model.read(picture), model.predict(picture)
    assert reading.number == '4' and reading.confidence == pytest.approx(prediction.confidence, abs=1e-6)
    assert np.array_equal(reading.digits[0].model_input, prediction.model_input)


def test_confidence_is_the_product_of_the_digits_and_the_grouping(model):
    reading = model.read(written([3, 8, 2], step=75))
    product = math.prod(p.confidence for p in reading.digits)
    assert 0 < reading.confidence <= product + 1e-12


def test_only_dots_are_not_a_number(model):
    reading = model.read([[(10, 10), (12, 12)], [(60, 10), (62, 11)]])
    assert reading.number == '' and reading.verdict == predict.NOT_A_NUMBER and reading.confidence == 0


def test_the_numbers_benchmark_composes_one_writers_digits_the_same_every_time():
    digits = evaluate.load_drawn()['dev']
    numbers = evaluate.compose_numbers(digits, 4, seed=3)
    assert numbers == evaluate.compose_numbers(digits, 4, seed=3)
    assert [len(label) for label, _ in numbers] == [n for n in range(2, 7) for _ in range(4)]
    for label, digit_strokes in numbers:
        assert len(digit_strokes) == len(label)
        boxes = [segment.union([segment.stroke_box(s) for s in strokes]) for strokes in digit_strokes]
        assert all(a[0] < b[0] for a, b in zip(boxes, boxes[1:]))               # in writing order, left to right
        height = max(b[3] for b in boxes) - min(b[1] for b in boxes)
        assert max(b[3] for b in boxes) - min(b[3] for b in boxes) < 0.3 * height  # on a common baseline


def test_a_miscount_is_traced_to_a_digit_not_read_as_one_even_alone(model):
    """evaluate.py --numbers says how many miscounted numbers hold a digit that alone is not one digit either."""
    strokes, first = written([2, 1, 2]), len(DIGITS[2])
    digit_strokes = [strokes[:first], strokes[first:]]   # the second "digit" is a 1 and a 2 side by side
    for pipeline in evaluate.PIPELINES:
        assert evaluate.split_alone(model, digit_strokes, pipeline)
        assert not evaluate.split_alone(model, digit_strokes[:1], pipeline)
        row, = evaluate.numbers_rows(model, [('27', digit_strokes)], pipeline)
        assert not row.count_right and row.split_alone
        assert 'miscounted: 1 numbers, 1 of them holding' in evaluate.numbers_lines(pipeline, [row])[-1]
