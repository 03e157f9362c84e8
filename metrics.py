"""How good a model is, in numbers: accuracy and loss on a split, the tables that explain them (per-class
accuracy, the classification report, the most confused pairs), and calibration (temperature scaling, the
expected calibration error, the energy score that says "not a digit").

Training, the notebook, the figures and the drawn-digits benchmark share these; this module imports only
the library (nn) and draws nothing.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import files
from files import PLOTS_DIR
from nn import log_softmax

DIGITS = list(range(10))
ENERGY_QUANTILE = 0.998  # of the validation images stay below the energy limit. Chosen on the drawn dev half:
                         # with predict.side_by_side, 99.8% (CNN) and 98.8% (MLP) of the dev digits are shown as
                         # digits, and 35.5% (CNN) and 16% (MLP) of scribbles as not a digit (evaluate.py --drawn)


@contextmanager
def eval_mode(model):
    """The model in evaluation mode (dropout off, batch norm on its running statistics) for the block, then
    back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@dataclass
class Evaluation:
    loss: float                 # mean cross-entropy over the split
    accuracy: float             # fraction correct, 0..1
    predictions: torch.Tensor   # (N,) predicted class
    probabilities: torch.Tensor  # (N, 10)
    labels: torch.Tensor        # (N,) true class


def evaluate(model, images, labels, batch_size=1000, temperature=1.0):
    """Loss (summed over samples, divided by N), accuracy, predictions and probabilities, in
    batches on the tensors' device; probabilities are softmax(logits / temperature), as predict
    computes them with a calibrated checkpoint. The model is put in eval mode and restored after."""
    if len(labels) == 0:
        raise ValueError('cannot evaluate on an empty split')
    total_loss, log_probs = 0.0, []
    with eval_mode(model):
        for start in range(0, len(labels), batch_size):
            log_p = log_softmax(model.logits(images[start:start + batch_size]) / temperature)
            total_loss += -log_p.gather(1, labels[start:start + batch_size, None]).sum().item()
            log_probs.append(log_p)
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
    from sklearn.metrics import classification_report  # here: training imports this module, not sklearn
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


def save_tables(evaluation, folder=PLOTS_DIR):
    """Write the three tables as CSV into `folder`; returns {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {'per_class_accuracy': per_class_accuracy(evaluation),
              'classification_report': classification_report_table(evaluation),
              'most_confused_pairs': most_confused_pairs(evaluation)}
    paths = {}
    for name, table in tables.items():
        paths[name] = folder / f'{name}.csv'
        files.atomic_write(paths[name], lambda f: table.to_csv(f, index=table.index.name is not None,
                                                               float_format='%.6f'))
    return paths


def evaluation_of(predictions, labels):
    """An Evaluation (for the tables above) from predict's Predictions of labelled images."""
    probabilities, labels = torch.tensor([p.probabilities for p in predictions]), torch.tensor(labels)
    predicted = probabilities.argmax(1)
    loss = -probabilities.gather(1, labels[:, None]).clamp_min(1e-12).log().mean().item()
    return Evaluation(loss=loss, accuracy=(predicted == labels).float().mean().item(),
                      predictions=predicted, probabilities=probabilities, labels=labels)


# ---------------------------------------------------------------- calibration

def calibration_bins(probabilities, labels, bins=15):
    """Per equal-width confidence bin (lo, hi] of the highest probability: number of
    predictions, their mean confidence and their accuracy (NaN for an empty bin), as numpy."""
    probabilities = torch.as_tensor(probabilities).detach().cpu().double()
    confidence, predicted = probabilities.max(1)
    correct = (predicted == torch.as_tensor(labels).cpu()).double()
    index = torch.bucketize(confidence, torch.arange(1, bins, dtype=torch.float64) / bins)
    count = torch.bincount(index, minlength=bins).double()
    with np.errstate(invalid='ignore'):
        return (count.long().numpy(), (torch.bincount(index, confidence, minlength=bins) / count).numpy(),
                (torch.bincount(index, correct, minlength=bins) / count).numpy())


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE: the gap between accuracy and mean confidence in each equal-width confidence bin,
    weighted by the bin's share of the predictions (sum of |acc - conf| * n_bin / N), 0..1."""
    count, confidence, accuracy = calibration_bins(probabilities, labels, bins)
    filled = count > 0
    return float((np.abs(accuracy - confidence)[filled] * count[filled]).sum() / count.sum())


def equal_count_bins(probabilities, labels, bins=10):
    """The predictions sorted by confidence (highest probability) and cut into `bins` groups of equal
    size (to one prediction): per group, its size, lowest, mean and highest confidence and its accuracy,
    as a DataFrame. Unlike equal-width bins none is nearly empty, so no point of a reliability diagram
    rests on a handful of predictions; a model that is almost always sure gets most of its groups near 100%."""
    probabilities = torch.as_tensor(probabilities).detach().cpu().double()
    confidence, predicted = probabilities.max(1)
    correct = (predicted == torch.as_tensor(labels).cpu()).double()
    order = confidence.argsort()
    groups = [g for g in torch.tensor_split(order, bins) if len(g)]  # fewer predictions than bins: no empty one
    return pd.DataFrame([{'count': len(g), 'low': confidence[g].min().item(), 'confidence': confidence[g].mean().item(),
                          'high': confidence[g].max().item(), 'accuracy': correct[g].mean().item()} for g in groups])


def logits_of(model, images, batch_size=1000):
    """The model's logits for `images` in eval mode, in batches, as one tensor (the model's mode is restored)."""
    with eval_mode(model):
        return torch.cat([model.logits(images[start:start + batch_size]) for start in range(0, len(images), batch_size)])


def nll(logits, labels, temperature=1.0):
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature)."""
    log_p = log_softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature)
    return -log_p.gather(1, torch.as_tensor(labels)[:, None]).mean().item()


def energies(logits, temperature=1.0):
    """The energy score -T * logsumexp(logits / T) of each row (Liu et al. 2020): high (near 0 or above) for
    inputs unlike the training digits, low for ones the model has seen many of."""
    return -temperature * torch.logsumexp(torch.as_tensor(logits, dtype=torch.float64) / temperature, 1)


def calibration(logits, labels, split='val'):
    """What train.py stores as a checkpoint's 'calibration', from the logits of a held-out split: the fitted
    temperature, the NLL before and after it, and energy_limit, the energy that ENERGY_QUANTILE of the split's
    images stay below (predict calls a drawing with a higher energy "not a digit"). Computed on the CPU in
    float64 (which MPS lacks)."""
    logits, labels = torch.as_tensor(logits).cpu(), torch.as_tensor(labels).cpu()
    temperature = fit_temperature(logits, labels)
    return {'temperature': temperature, 'split': split, 'nll_before': nll(logits, labels),
            'nll_after': nll(logits, labels, temperature),
            'energy_limit': torch.quantile(energies(logits, temperature), ENERGY_QUANTILE).item()}


def fit_temperature(logits, labels, low=0.05, high=20.0, tolerance=1e-5):
    """Temperature scaling (Guo et al. 2017): the T in [low, high] that minimises the mean NLL of
    softmax(logits / T), found by golden-section search over log T (the NLL is convex in 1/T, so it has
    one minimum). Dividing every logit by one T never changes which digit wins: accuracy is kept, only the
    confidence moves. T < 1 sharpens an under-confident model (label smoothing makes one), T > 1 softens."""
    logits = torch.as_tensor(logits, dtype=torch.float64).cpu()
    labels = torch.as_tensor(labels).cpu()
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    f_c, f_d = nll(logits, labels, np.exp(c)), nll(logits, labels, np.exp(d))
    while b - a > tolerance:
        if f_c < f_d:
            b, d, f_d = d, c, f_c
            c = b - ratio * (b - a)
            f_c = nll(logits, labels, np.exp(c))
        else:
            a, c, f_c = c, d, f_d
            d = a + ratio * (b - a)
            f_d = nll(logits, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


def uncalibrated(probabilities, temperature):
    """The probabilities before temperature scaling: softmax(T * log p), as log p is logits / T up to a constant."""
    return (temperature * torch.as_tensor(probabilities, dtype=torch.float64).clamp_min(1e-300).log()).softmax(1)

