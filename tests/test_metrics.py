"""evaluate(): loss, accuracy and predictions against torch's own; the tables against
hand-counted examples and scikit-learn; calibration (ECE, temperature scaling) and the drawings that are
not one digit."""
import numpy as np
import pandas as pd
import pytest
import torch

import evaluate
import metrics
from metrics import Evaluation
from nn import Net


def evaluation_of(labels, predictions):
    labels, predictions = torch.tensor(labels), torch.tensor(predictions)
    return Evaluation(loss=0.0, accuracy=(labels == predictions).float().mean().item(),
                      predictions=predictions, probabilities=torch.nn.functional.one_hot(predictions, 10).float(),
                      labels=labels)


def test_evaluate_matches_torch_and_restores_mode():
    torch.manual_seed(0)
    model = Net().train()
    images, labels = torch.randn(250, 1, 28, 28), torch.randint(0, 10, (250,))
    result = metrics.evaluate(model, images, labels, batch_size=64)  # batches that do not divide 250
    logits = model.logits(images)
    assert result.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert torch.equal(result.predictions, logits.argmax(1))
    assert result.accuracy == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert torch.allclose(result.probabilities, logits.softmax(1), atol=1e-6)
    assert model.training
    with pytest.raises(ValueError, match='empty'):
        metrics.evaluate(model, images[:0], labels[:0])


# digit 0: 3 images, 2 right, one taken for 6; digit 1: 2 right; digit 6: 1 taken for 0; digit 9: 1 for 4
LABELS = [0, 0, 0, 1, 1, 6, 9]
PREDICTIONS = [0, 0, 6, 1, 1, 0, 4]


def test_confusion_and_per_class_accuracy():
    ev = evaluation_of(LABELS, PREDICTIONS)
    counts = metrics.confusion(ev)
    assert counts.shape == (10, 10) and counts.sum() == 7
    assert counts[0, 0] == 2 and counts[0, 6] == 1 and counts[6, 0] == 1 and counts[9, 4] == 1
    table = metrics.per_class_accuracy(ev).set_index('digit')
    assert list(table.columns) == ['accuracy', 'samples']
    assert table.loc[0].tolist() == pytest.approx([2 / 3, 3])
    assert table.loc[1].tolist() == [1.0, 2] and table.loc[6].tolist() == [0.0, 1]
    assert pd.isna(table.loc[2, 'accuracy']) and table.loc[2, 'samples'] == 0  # no images of 2


def test_classification_report_table():
    ev = evaluation_of(LABELS, PREDICTIONS)
    report = metrics.classification_report_table(ev)
    assert list(report.index) == [str(d) for d in range(10)] + ['accuracy', 'macro avg', 'weighted avg']
    assert list(report.columns) == ['precision', 'recall', 'f1-score', 'support']
    assert report.loc['0', 'precision'] == pytest.approx(2 / 3)  # predicted 0 three times, right twice
    assert report.loc['0', 'recall'] == pytest.approx(2 / 3)
    assert report.loc['accuracy', 'f1-score'] == pytest.approx(4 / 7)
    assert report.loc['accuracy', 'support'] == 7 and report.loc['weighted avg', 'recall'] == pytest.approx(4 / 7)


def test_most_confused_pairs():
    ev = evaluation_of(LABELS + [9, 9], PREDICTIONS + [4, 9])
    pairs = metrics.most_confused_pairs(ev, top=3)
    assert pairs[['true', 'predicted', 'count']].values.tolist() == [[9, 4, 2], [0, 6, 1], [6, 0, 1]]
    assert pairs.loc[0, 'share_of_true'] == pytest.approx(2 / 3)


def test_save_tables(tmp_path):
    paths = metrics.save_tables(evaluation_of(LABELS, PREDICTIONS), tmp_path / 'tables')
    assert sorted(p.name for p in paths.values()) == ['classification_report.csv', 'most_confused_pairs.csv',
                                                      'per_class_accuracy.csv']
    report = pd.read_csv(paths['classification_report'], index_col='class')
    assert report.loc['accuracy', 'f1-score'] == pytest.approx(4 / 7)
    assert pd.read_csv(paths['per_class_accuracy']).shape == (10, 3)


# ---------------------------------------------------------------- calibration

def synthetic_evaluation(n=500):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    logits = torch.randn(n, 10, generator=g)
    logits[torch.arange(n), labels] += 3  # mostly right, some wrong
    return Evaluation(loss=0.5, accuracy=0.0, predictions=logits.argmax(1), probabilities=logits.softmax(1),
                      labels=labels)


def calibration_set(groups):
    """Probabilities and labels from (confidence, predictions, correct ones): each row's top
    probability is `confidence` on class 0, the rest shared by the other nine classes."""
    probabilities, labels = [], []
    for confidence, n, correct in groups:
        row = torch.full((10,), (1 - confidence) / 9, dtype=torch.float64)
        row[0] = confidence
        probabilities.append(row.expand(n, 10))
        labels.append(torch.tensor([0] * correct + [1] * (n - correct)))
    return torch.cat(probabilities), torch.cat(labels)


def test_expected_calibration_error_known_values():
    calibrated = calibration_set([(0.3, 20, 6), (0.55, 40, 22), (0.8, 100, 80), (0.95, 200, 190), (1.0, 50, 50)])
    assert metrics.expected_calibration_error(*calibrated) == pytest.approx(0, abs=1e-12)
    overconfident = calibration_set([(0.9, 100, 60)])
    assert metrics.expected_calibration_error(*overconfident) == pytest.approx(0.3)
    # half the predictions 30 points overconfident, half calibrated: 0.3 * 1/2
    assert metrics.expected_calibration_error(*calibration_set([(0.9, 50, 30), (0.7, 50, 35)])) == pytest.approx(0.15)
    # bins are (lo, hi]: 0.4 and 0.39 share the bin (1/3, 0.4]; 0.41 is in the next one
    shared = calibration_set([(0.4, 10, 10), (0.39, 10, 0)])
    assert metrics.calibration_bins(*shared)[0][5] == 20
    assert metrics.expected_calibration_error(*shared) == pytest.approx(abs(0.5 - 0.395))
    split = calibration_set([(0.41, 10, 10), (0.39, 10, 0)])
    assert metrics.expected_calibration_error(*split) == pytest.approx((0.59 + 0.39) / 2)


def test_expected_calibration_error_matches_a_direct_loop():
    evaluation = synthetic_evaluation()
    confidence, predicted = evaluation.probabilities.double().max(1)
    correct = (predicted == evaluation.labels).double()
    total = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            total += abs(correct[inside].mean() - confidence[inside].mean()).item() * inside.sum().item()
    assert metrics.expected_calibration_error(evaluation.probabilities, evaluation.labels) == pytest.approx(total / 500)
    split = calibration_set([(0.41, 10, 10), (0.39, 10, 0)])
    assert metrics.expected_calibration_error(*split, bins=2) == pytest.approx(0.1)  # one bin (0, 0.5]: |0.5 - 0.4|



def test_equal_count_bins_hold_the_same_number_of_predictions_in_confidence_order():
    probabilities, labels = calibration_set([(0.3, 20, 6), (0.95, 170, 160), (1.0, 10, 10)])
    bins = metrics.equal_count_bins(probabilities, labels, bins=4)
    assert bins['count'].tolist() == [50, 50, 50, 50]
    first = bins.iloc[0]  # the 20 predictions at 30% and the first 30 at 95%
    assert first['low'] == pytest.approx(0.3) and first['high'] == pytest.approx(0.95)
    assert first['confidence'] == pytest.approx((20 * 0.3 + 30 * 0.95) / 50)
    assert bins['low'].is_monotonic_increasing and bins.iloc[-1]['high'] == pytest.approx(1.0)
    assert (bins['accuracy'] * bins['count']).sum() == pytest.approx(176)  # every right answer counted once
    assert len(metrics.equal_count_bins(probabilities[:3], labels[:3], bins=10)) == 3  # no empty bin


def sampled(logits, temperature, seed=0):
    """Labels drawn from softmax(logits / temperature): logits that `temperature` calibrates exactly."""
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial((logits / temperature).softmax(1), 1, generator=generator)[:, 0]


@pytest.mark.parametrize('true_t', [0.4, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    torch.manual_seed(1)
    logits = torch.randn(20_000, 10) * 4
    labels = sampled(logits, true_t)
    fitted = metrics.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert metrics.nll(logits, labels, fitted) <= min(metrics.nll(logits, labels, fitted * f) for f in (0.9, 1.1))


def test_calibration_fits_t_and_sets_the_energy_limit_at_its_quantile():
    torch.manual_seed(2)
    logits = torch.randn(5000, 10) * 3
    labels = sampled(logits, 0.5)
    c = metrics.calibration(logits, labels)
    assert c['split'] == 'val' and c['temperature'] == pytest.approx(0.5, rel=0.05)
    assert c['nll_after'] < c['nll_before'] == pytest.approx(metrics.nll(logits, labels))
    below = (metrics.energies(logits, c['temperature']) <= c['energy_limit']).double().mean().item()
    assert below == pytest.approx(metrics.ENERGY_QUANTILE, abs=1e-3)
    # scaling fixes confidence, never the answer: the ECE falls, the argmax is the same
    before = metrics.expected_calibration_error(logits.softmax(1), labels)
    after = metrics.expected_calibration_error((logits / c['temperature']).softmax(1), labels)
    assert after < 0.02 < before


def test_uncalibrated_undoes_the_temperature():
    logits = torch.randn(50, 10, dtype=torch.float64)
    scaled = (logits / 0.4).softmax(1)
    assert torch.allclose(metrics.uncalibrated(scaled, 0.4), logits.softmax(1))


# ---------------------------------------------------------------- not one digit

DIGIT_DRAWINGS = [{'strokes': [[(0, 0), (10, 40), (20, 80)]]}, {'strokes': [[(0, 0), (30, 0), (0, 50), (30, 50)]]},
                  {'strokes': [[(5, 0), (5, 60)], [(0, 30), (20, 30)]]}]


def test_negatives_are_seeded_and_on_the_canvas():
    first = evaluate.negatives(DIGIT_DRAWINGS, count=20, seed=3)
    assert first == evaluate.negatives(DIGIT_DRAWINGS, count=20, seed=3)
    assert first != evaluate.negatives(DIGIT_DRAWINGS, count=20, seed=4)
    assert list(first) == list(evaluate.NEGATIVE_KINDS) and all(len(v) == 20 for v in first.values())
    for drawings in first.values():
        points = np.array([p for strokes in drawings for stroke in strokes for p in stroke])
        assert points.dtype.kind == 'i' and points.min() >= 0 and points.max() <= 280
    for pair in first['pair']:  # two digits side by side: ink left and right of the middle, none across it
        xs = np.array([x for stroke in pair for x, _ in stroke])
        assert xs.min() < 140 - 5 and xs.max() > 140 + 5 and not any(135 < x < 145 for x in xs)
