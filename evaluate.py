"""Evaluate a model on a whole split (the one function training, the notebook and the app share),
and the tables that explain the result: per-class accuracy, the classification report and the
most confused pairs of digits."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nn import log_softmax

DIGITS = list(range(10))


@dataclass
class Evaluation:
    loss: float                 # mean cross-entropy over the split
    accuracy: float             # fraction correct, 0..1
    predictions: torch.Tensor   # (N,) predicted class
    probabilities: torch.Tensor  # (N, 10)
    labels: torch.Tensor        # (N,) true class


def evaluate(model, images, labels, batch_size=1000):
    """Loss (summed over samples, divided by N), accuracy, predictions and probabilities, in
    batches on the tensors' device. The model is put in eval mode and restored after."""
    if len(labels) == 0:
        raise ValueError('cannot evaluate on an empty split')
    was_training = model.training
    model.eval()
    total_loss, log_probs = 0.0, []
    for start in range(0, len(labels), batch_size):
        log_p = log_softmax(model.logits(images[start:start + batch_size]))
        total_loss += -log_p.gather(1, labels[start:start + batch_size, None]).sum().item()
        log_probs.append(log_p)
    model.train(was_training)
    probabilities = torch.cat(log_probs).exp()
    predictions = probabilities.argmax(1)
    return Evaluation(loss=total_loss / len(labels),
                      accuracy=(predictions == labels).float().mean().item(),
                      predictions=predictions, probabilities=probabilities, labels=labels)


# ---------------------------------------------------------------- tables

def confusion(evaluation):
    """10x10 counts (numpy): row = true digit, column = predicted digit."""
    cells = evaluation.labels.cpu() * len(DIGITS) + evaluation.predictions.cpu()
    return torch.bincount(cells, minlength=len(DIGITS) ** 2).reshape(len(DIGITS), len(DIGITS)).numpy()


def per_class_accuracy(evaluation):
    """One row per digit: the share of its test images classified correctly, and how many there are."""
    counts = confusion(evaluation)
    samples = pd.Series(counts.sum(1))
    return pd.DataFrame({'digit': DIGITS, 'accuracy': counts.diagonal() / samples, 'samples': samples})


def classification_report_table(evaluation):
    """scikit-learn's report (precision, recall, F1, support per digit, then accuracy and the
    macro and weighted averages) as a DataFrame indexed by row name."""
    from sklearn.metrics import classification_report  # here: train.py imports this module, not sklearn
    report = classification_report(evaluation.labels.cpu(), evaluation.predictions.cpu(), labels=DIGITS,
                                   target_names=[str(d) for d in DIGITS], output_dict=True, zero_division=0)
    accuracy = report.pop('accuracy')  # a bare number; shown as sklearn prints it, in the F1 column
    table = pd.DataFrame(report).T
    table.loc['accuracy'] = [np.nan, np.nan, accuracy, len(evaluation.labels)]
    table = table.loc[[str(d) for d in DIGITS] + ['accuracy', 'macro avg', 'weighted avg']]
    return table.astype({'support': int}).rename_axis('class')


def most_confused_pairs(evaluation, top=10):
    """The off-diagonal cells of the confusion matrix with the most images, largest first:
    which digit was taken for which, how often, and as a share of that true digit's images."""
    counts = confusion(evaluation)
    errors = counts.copy()
    np.fill_diagonal(errors, 0)
    true, predicted = np.nonzero(errors)
    pairs = pd.DataFrame({'true': true, 'predicted': predicted, 'count': counts[true, predicted],
                          'share_of_true': counts[true, predicted] / counts.sum(1)[true]})
    return pairs.sort_values(['count', 'true', 'predicted'], ascending=[False, True, True],
                             ignore_index=True).head(top)


def save_tables(evaluation, folder='training_plots'):
    """Write the three tables as CSV into `folder`; returns {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {'per_class_accuracy': per_class_accuracy(evaluation),
              'classification_report': classification_report_table(evaluation),
              'most_confused_pairs': most_confused_pairs(evaluation)}
    paths = {}
    for name, table in tables.items():
        paths[name] = folder / f'{name}.csv'
        table.to_csv(paths[name], index=table.index.name is not None, float_format='%.6f')
    return paths
