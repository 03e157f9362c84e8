"""The figures that explain a training run: one function per figure.

Each returns a matplotlib Figure (shown inline by Jupyter) and, given `path=`, also saves it as
PNG. The history plots take the DataFrame `train.train` returns (or its training_history.csv);
the evaluation plots take an `evaluate.Evaluation` and, for digit galleries, the images it was
computed on. Figures are built as `matplotlib.figure.Figure` objects rather than through pyplot,
so they never open a window, need no closing and leave pyplot's state alone.
"""
import functools
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

from evaluate import DIGITS, confusion

# One look for every figure, readable when a README shows it about 800 pixels wide. Files are
# written at 100 dpi; notebooks show them at 72 dpi, which keeps a notebook with outputs small.
STYLE = {**sns.axes_style('whitegrid'), **sns.plotting_context('notebook'),
         'axes.titlesize': 13, 'axes.titleweight': 'bold', 'figure.titlesize': 14,
         'figure.titleweight': 'bold', 'legend.frameon': True, 'figure.dpi': 72, 'savefig.dpi': 100,
         'savefig.bbox': 'tight', 'savefig.facecolor': 'white', 'figure.facecolor': 'white'}
SPLIT_COLORS = {'train': '#1f77b4', 'val': '#ff7f0e', 'test': '#2ca02c'}
SPLIT_NAMES = {'train': 'training', 'val': 'validation', 'test': 'test'}
RIGHT, WRONG = '#2ca02c', '#d62728'


def figure(draw):
    """Draw under STYLE; save to `path` when one is given. Returns the Figure."""
    @functools.wraps(draw)
    def wrapper(*args, path=None, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = draw(*args, **kwargs)
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                fig.savefig(path)
        return fig
    return wrapper


def best_epoch(history):
    """(row, column): the epoch with the highest validation accuracy, as training selects it;
    test accuracy when the run had no validation split."""
    column = 'val_acc' if history['val_acc'].notna().any() else 'test_acc'
    return history.loc[history[column].idxmax()], column


def mark_best(ax, history):
    row, _ = best_epoch(history)
    ax.axvline(row['epoch'], color='0.35', linestyle=':', linewidth=1.5, label=f'best epoch ({int(row["epoch"])})')


def log_y(ax):
    """Log y axis labelled with plain numbers (0.05, 0.1, 0.2, ...), more of them when the data
    spans less than a decade or so. Call after plotting."""
    ax.set_yscale('log')
    low, high = ax.get_ylim()
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5) if high / low > 30 else (1, 1.5, 2, 3, 5, 7)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    ax.yaxis.set_minor_formatter(NullFormatter())


def epoch_axis(ax):
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ---------------------------------------------------------------- training history

@figure
def training_history(history):
    """Loss and accuracy of each split per epoch, the best epoch marked."""
    fig = Figure(figsize=(11, 4.3), layout='constrained')
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split in ('train', 'val', 'test'):
        if history[f'{split}_loss'].notna().any():
            style = dict(color=SPLIT_COLORS[split], marker='o', markersize=3, label=SPLIT_NAMES[split])
            loss_ax.plot(history['epoch'], history[f'{split}_loss'], **style)
            acc_ax.plot(history['epoch'], 100 * history[f'{split}_acc'], **style)
    row, column = best_epoch(history)
    acc_ax.plot(row['epoch'], 100 * row[column], marker='*', markersize=16, color='gold',
                markeredgecolor='black', linestyle='none',
                label=f'best {SPLIT_NAMES[column[:-4]]}: {100 * row[column]:.2f}%')
    loss_ax.set(title='Loss', ylabel='cross-entropy (log scale)')
    log_y(loss_ax)
    acc_ax.set(title='Accuracy', ylabel='accuracy (%)')
    for ax in (loss_ax, acc_ax):
        mark_best(ax, history)
        epoch_axis(ax)
        ax.legend()
    fig.suptitle('Training history')
    return fig


@figure
def combined_metrics(history):
    """Training loss (left axis) and validation accuracy (right axis) on one plot."""
    fig = Figure(figsize=(10, 4.5), layout='constrained')
    loss_ax = fig.subplots()
    acc_ax = loss_ax.twinx()
    _, column = best_epoch(history)
    split = column[:-4]
    loss_ax.plot(history['epoch'], history['train_loss'], color=SPLIT_COLORS['train'], marker='o',
                 markersize=3, label='training loss')
    acc_ax.plot(history['epoch'], 100 * history[column], color=SPLIT_COLORS[split], marker='s',
                markersize=3, label=f'{SPLIT_NAMES[split]} accuracy')
    mark_best(loss_ax, history)
    loss_ax.set_ylabel('training loss (cross-entropy)', color=SPLIT_COLORS['train'])
    acc_ax.set_ylabel(f'{SPLIT_NAMES[split]} accuracy (%)', color=SPLIT_COLORS[split])
    acc_ax.grid(False)
    epoch_axis(loss_ax)
    lines = loss_ax.get_lines() + acc_ax.get_lines()
    fig.legend(lines, [line.get_label() for line in lines], loc='outside lower center', ncols=len(lines))
    loss_ax.set_title(f'Training loss and {SPLIT_NAMES[split]} accuracy')
    return fig


@figure
def gradient_norms(history):
    """The mean L2 norm of each weight's gradient per epoch (log scale), one line per layer."""
    columns = [c for c in history.columns if c.startswith('grad_norm_')]
    if not columns:
        raise ValueError('the history has no grad_norm_<layer> columns; it does not come from train.py')
    fig = Figure(figsize=(10, 4.5), layout='constrained')
    ax = fig.subplots()
    for column in columns:
        ax.plot(history['epoch'], history[column], marker='o', markersize=3,
                label=column.removeprefix('grad_norm_'))
    mark_best(ax, history)
    ax.set(title='Gradient norm per layer', ylabel='mean L2 norm of weight gradient\n(log scale)')
    log_y(ax)
    epoch_axis(ax)
    ax.legend(title='layer')
    return fig


# ---------------------------------------------------------------- evaluation

@figure
def confusion_matrix(evaluation):
    """Counts of true against predicted digits, and the same rows as percentages, where the
    colour shows only the errors (the diagonal holds each digit's accuracy)."""
    counts = confusion(evaluation)
    percent = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    diagonal = np.eye(len(DIGITS), dtype=bool)
    errors_text = np.where(percent >= 0.05, np.char.mod('%.1f', percent), '')
    fig = Figure(figsize=(13, 5.8), layout='constrained')
    count_ax, percent_ax = fig.subplots(1, 2)
    sns.heatmap(counts, ax=count_ax, annot=True, fmt='d', cmap='Blues', cbar=False, square=True,
                annot_kws={'fontsize': 9})
    sns.heatmap(percent, ax=percent_ax, mask=diagonal, annot=errors_text, fmt='', cmap='Reds',
                cbar_kws={'label': '% of the true digit', 'shrink': 0.8}, square=True,
                annot_kws={'fontsize': 9}, vmin=0, linewidths=0.5, linecolor='white')
    for d in DIGITS:
        percent_ax.text(d + 0.5, d + 0.5, f'{percent[d, d]:.1f}', ha='center', va='center',
                        fontsize=9, fontweight='bold', color=RIGHT)
    count_ax.set_title('Test images per (true, predicted) pair')
    percent_ax.set_title('Row-normalised: errors in red, accuracy in green')
    for ax in (count_ax, percent_ax):
        ax.set(xlabel='predicted digit', ylabel='true digit', facecolor='0.92')
        ax.grid(False)
        ax.tick_params(left=False, bottom=False, labelrotation=0)
    fig.suptitle(f'Confusion matrix on {len(evaluation.labels):,} test images '
                 f'(accuracy {100 * evaluation.accuracy:.2f}%)')
    return fig


@figure
def prediction_distribution(evaluation):
    """How confident right and wrong predictions are, and how often each digit is predicted
    compared with how often it occurs."""
    confidence = evaluation.probabilities.max(1).values.cpu().numpy()
    correct = (evaluation.predictions == evaluation.labels).cpu().numpy()
    fig = Figure(figsize=(11, 4.3), layout='constrained')
    hist_ax, count_ax = fig.subplots(1, 2)
    bins = np.linspace(0.1, 1.0, 19)  # ten classes: the highest probability is at least 0.1
    hist_ax.hist([confidence[correct], confidence[~correct]], bins=bins, color=[RIGHT, WRONG],
                 label=[f'correct ({correct.sum():,})', f'wrong ({(~correct).sum():,})'])
    hist_ax.set(title='Confidence of each prediction', xlabel='highest predicted probability',
                ylabel='test images (log scale)', yscale='log')
    hist_ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    hist_ax.legend(loc='upper left')

    counts = confusion(evaluation)
    true, predicted = counts.sum(1), counts.sum(0)
    count_ax.bar(DIGITS, true, color='0.8', label='is the true digit')
    count_ax.plot(DIGITS, predicted, '_', color='black', markersize=24, markeredgewidth=2.5,
                  label='is the predicted digit')
    for d in DIGITS:
        count_ax.annotate(f'{predicted[d] - true[d]:+d}', (d, max(true[d], predicted[d])),
                          xytext=(0, 5), textcoords='offset points', ha='center', fontsize=9)
    count_ax.set(title='Predicted against true counts (difference above)', xlabel='digit',
                 ylabel='test images', xticks=DIGITS, ylim=(0, 1.15 * max(true.max(), predicted.max())))
    count_ax.legend(loc='lower right', framealpha=0.95)
    return fig


def digit_grid(fig, images, titles, wrong, columns):
    """Images in a grid, each titled; the wrong ones framed and titled in red."""
    rows = max(1, -(-len(images) // columns))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set(xticks=[], yticks=[])
        if i >= len(images):
            ax.set_axis_off()
            continue
        ax.imshow(images[i].reshape(28, 28).cpu().numpy(), cmap='gray_r', interpolation='nearest')
        color = WRONG if wrong[i] else 'black'
        ax.set_title(titles[i], fontsize=10, color=color, fontweight='bold' if wrong[i] else 'normal')
        for spine in ax.spines.values():
            spine.set(visible=wrong[i], color=WRONG, linewidth=3)


@figure
def sample_predictions(evaluation, images, count=32, columns=8):
    """The first `count` test digits with true label, prediction and confidence; errors in red."""
    count = min(count, len(images))
    confidence = evaluation.probabilities.max(1).values
    true, predicted = evaluation.labels[:count].tolist(), evaluation.predictions[:count].tolist()
    wrong = [t != p for t, p in zip(true, predicted)]
    fig = Figure(figsize=(1.3 * columns, 1.55 * -(-count // columns) + 0.4), layout='constrained')
    digit_grid(fig, images[:count], [f'true {t}, pred {p}\n{100 * c:.1f}%' for t, p, c in
                                     zip(true, predicted, confidence[:count].tolist())], wrong, columns)
    fig.suptitle(f'The first {count} test digits: {count - sum(wrong)} right, {sum(wrong)} wrong'
                 + (' (in red)' if any(wrong) else ''))
    return fig


@figure
def confident_mistakes(evaluation, images, count=16, columns=8):
    """The wrong predictions the model was most sure of: what it saw, what it said, and the
    probability it gave the true digit."""
    probabilities = evaluation.probabilities.cpu()
    true, predicted = evaluation.labels.cpu(), evaluation.predictions.cpu()
    confidence = probabilities.max(1).values
    wrong = (predicted != true).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:count].tolist()
    fig = Figure(figsize=(1.3 * columns, 1.9 * max(1, -(-len(worst) // columns)) + 0.4), layout='constrained')
    titles = [f'true {true[i]:d}, pred {predicted[i]:d}\np({predicted[i]:d}) = {100 * confidence[i]:.1f}%\n'
              f'p({true[i]:d}) = {100 * probabilities[i, true[i]]:.1f}%' for i in worst]
    digit_grid(fig, images[worst], titles, [True] * len(worst), columns)
    fig.suptitle(f'The {len(worst)} most confident of {len(wrong):,} mistakes' if worst else 'No mistakes')
    return fig


# ---------------------------------------------------------------- data

@figure
def data_samples(images, labels, count=32, columns=8):
    """A first look at the data: digits with their labels."""
    count = min(count, len(images))
    fig = Figure(figsize=(1.3 * columns, 1.4 * -(-count // columns) + 0.4), layout='constrained')
    digit_grid(fig, images[:count], [f'label {y}' for y in labels[:count].tolist()], [False] * count, columns)
    fig.suptitle(f'The first {count} training images')
    return fig


@figure
def class_balance(splits):
    """The share of each digit in each split: {'train': labels, ...}."""
    fig = Figure(figsize=(10, 4), layout='constrained')
    ax = fig.subplots()
    width = 0.8 / len(splits)
    for i, (split, labels) in enumerate(splits.items()):
        share = np.bincount(labels.cpu().numpy(), minlength=len(DIGITS)) / len(labels)
        ax.bar(np.array(DIGITS) + (i - (len(splits) - 1) / 2) * width, 100 * share, width,
               color=SPLIT_COLORS.get(split), label=f'{SPLIT_NAMES.get(split, split)} ({len(labels):,})')
    ax.set(title='Class balance', xlabel='digit', ylabel='share of the split (%)', xticks=DIGITS,
           ylim=(0, 15))
    ax.legend(loc='upper center', ncols=len(splits))
    return fig
