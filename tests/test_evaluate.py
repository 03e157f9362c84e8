"""evaluate(): loss, accuracy and predictions against torch's own; the tables against
hand-counted examples and scikit-learn."""
import pandas as pd
import pytest
import torch

import evaluate
from evaluate import Evaluation
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
    result = evaluate.evaluate(model, images, labels, batch_size=64)  # batches that do not divide 250
    logits = model.logits(images)
    assert result.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert torch.equal(result.predictions, logits.argmax(1))
    assert result.accuracy == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert torch.allclose(result.probabilities, logits.softmax(1), atol=1e-6)
    assert model.training
    with pytest.raises(ValueError, match='empty'):
        evaluate.evaluate(model, images[:0], labels[:0])


# digit 0: 3 images, 2 right, one taken for 6; digit 1: 2 right; digit 6: 1 taken for 0; digit 9: 1 for 4
LABELS = [0, 0, 0, 1, 1, 6, 9]
PREDICTIONS = [0, 0, 6, 1, 1, 0, 4]


def test_confusion_and_per_class_accuracy():
    ev = evaluation_of(LABELS, PREDICTIONS)
    counts = evaluate.confusion(ev)
    assert counts.shape == (10, 10) and counts.sum() == 7
    assert counts[0, 0] == 2 and counts[0, 6] == 1 and counts[6, 0] == 1 and counts[9, 4] == 1
    table = evaluate.per_class_accuracy(ev).set_index('digit')
    assert list(table.columns) == ['accuracy', 'samples']
    assert table.loc[0].tolist() == pytest.approx([2 / 3, 3])
    assert table.loc[1].tolist() == [1.0, 2] and table.loc[6].tolist() == [0.0, 1]
    assert pd.isna(table.loc[2, 'accuracy']) and table.loc[2, 'samples'] == 0  # no images of 2


def test_classification_report_table():
    ev = evaluation_of(LABELS, PREDICTIONS)
    report = evaluate.classification_report_table(ev)
    assert list(report.index) == [str(d) for d in range(10)] + ['accuracy', 'macro avg', 'weighted avg']
    assert list(report.columns) == ['precision', 'recall', 'f1-score', 'support']
    assert report.loc['0', 'precision'] == pytest.approx(2 / 3)  # predicted 0 three times, right twice
    assert report.loc['0', 'recall'] == pytest.approx(2 / 3)
    assert report.loc['accuracy', 'f1-score'] == pytest.approx(4 / 7)
    assert report.loc['accuracy', 'support'] == 7 and report.loc['weighted avg', 'recall'] == pytest.approx(4 / 7)


def test_most_confused_pairs():
    ev = evaluation_of(LABELS + [9, 9], PREDICTIONS + [4, 9])
    pairs = evaluate.most_confused_pairs(ev, top=3)
    assert pairs[['true', 'predicted', 'count']].values.tolist() == [[9, 4, 2], [0, 6, 1], [6, 0, 1]]
    assert pairs.loc[0, 'share_of_true'] == pytest.approx(2 / 3)


def test_save_tables(tmp_path):
    paths = evaluate.save_tables(evaluation_of(LABELS, PREDICTIONS), tmp_path / 'tables')
    assert sorted(p.name for p in paths.values()) == ['classification_report.csv', 'most_confused_pairs.csv',
                                                      'per_class_accuracy.csv']
    report = pd.read_csv(paths['classification_report'], index_col='class')
    assert report.loc['accuracy', 'f1-score'] == pytest.approx(4 / 7)
    assert pd.read_csv(paths['per_class_accuracy']).shape == (10, 3)
