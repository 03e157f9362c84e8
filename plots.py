"""The figures that explain a training run: one function per figure.

Each returns a matplotlib Figure (shown inline by Jupyter) and, given `path=`, also saves it as
PNG; `subject=` adds a line to its title naming the model and the data it shows (every figure the
project ships says which). The history plots take the DataFrame `train.train` returns (or its training_history.csv);
the evaluation plots take a `metrics.Evaluation` and, for digit galleries, the images it was
computed on. Figures are built as `matplotlib.figure.Figure` objects rather than through pyplot,
so they never open a window, need no closing and leave pyplot's state alone.
"""
import functools
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

import files
from metrics import DIGITS, Evaluation, calibration_bins, confusion, equal_count_bins, expected_calibration_error
from predict import NOT_A_DIGIT, percent
from preprocess import CANVAS

# One look for every figure, readable when a README shows it about 800 pixels wide. Files are
# written at 200 dpi, sharp on a high-DPI screen; the notebook shows figures at figure.dpi (100),
# and at twice that with `%config InlineBackend.figure_formats = ['retina']`.
STYLE = {**sns.axes_style('whitegrid'), **sns.plotting_context('notebook'),
         'axes.titlesize': 13, 'axes.titleweight': 'bold', 'figure.titlesize': 14,
         'figure.titleweight': 'bold', 'legend.frameon': True, 'figure.dpi': 100, 'savefig.dpi': 200,
         'savefig.bbox': 'tight', 'savefig.facecolor': 'white', 'figure.facecolor': 'white'}
SPLIT_COLORS = {'train': '#1f77b4', 'val': '#ff7f0e', 'test': '#2ca02c'}
SPLIT_NAMES = {'train': 'training', 'val': 'validation', 'test': 'test'}
RIGHT, WRONG = '#2ca02c', '#d62728'
# Errors in red from a visible pink up: a single misclassified image must not vanish into white.
ERRORS = ListedColormap(matplotlib.colormaps['Reds'](np.linspace(0.15, 0.95, 256)))


def figure(draw):
    """Draw under STYLE; add `subject` (which model, which data) as the title's last line; save to
    `path` when one is given. Returns the Figure."""
    @functools.wraps(draw)
    def wrapper(*args, path=None, subject=None, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = draw(*args, **kwargs)
            if subject:
                title = fig.get_suptitle()
                fig.suptitle(f'{title}\n{subject}' if title else subject)
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                files.atomic_write(path, lambda f: fig.savefig(f, format=Path(path).suffix[1:] or 'png'))
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
    spans less than a decade or so, and evenly spaced round numbers (0.75, 0.8, ...) when it spans
    less than a factor of 3, where a log locator would leave one label or none. Call after plotting."""
    ax.set_yscale('log')
    low, high = ax.get_ylim()
    ax.yaxis.set_major_locator(MaxNLocator(5) if high / low < 3 else
                               LogLocator(subs=(1, 2, 5) if high / low > 30 else (1, 1.5, 2, 3, 5, 7)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    ax.yaxis.set_minor_formatter(NullFormatter())


def accuracy_range(ax, history):
    """A y range for accuracy (in %) that shows the validation and test curves apart: from a little below
    their lowest value to a little above the highest of all. Returns the bottom: training accuracy below it
    (the first epochs of an augmented run) is left out of the view and said so in the legend."""
    held_out = 100 * history[['val_acc', 'test_acc']].stack()
    every = 100 * history[['train_acc', 'val_acc', 'test_acc']].stack()
    low, high = held_out.min(), every.max()
    margin = max(0.08 * (high - low), 0.05)
    ax.set_ylim(low - 1.5 * margin, high + margin)
    return low - 1.5 * margin


def epoch_axis(ax):
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: a tick at 1, not 0.95-1.05


# ---------------------------------------------------------------- training history

@figure
def training_history(history):
    """Loss and accuracy of each split per epoch, the best epoch marked. The accuracy axis is
    scaled to the validation and test curves (see accuracy_range)."""
    fig = Figure(figsize=(11, 4.6), layout='constrained')
    loss_ax, acc_ax = fig.subplots(1, 2)
    bottom = accuracy_range(acc_ax, history)
    for split in ('train', 'val', 'test'):
        if history[f'{split}_loss'].notna().any():
            accuracy = 100 * history[f'{split}_acc']
            below = history['epoch'][accuracy < bottom].astype(int).tolist()
            hidden = f' (epoch{"s" * (len(below) > 1)} {", ".join(map(str, below))} below the axis, ' \
                     f'from {accuracy.min():.1f}%)' if below else ''
            style = dict(color=SPLIT_COLORS[split], marker='o', markersize=3)
            loss_ax.plot(history['epoch'], history[f'{split}_loss'], label=SPLIT_NAMES[split], **style)
            acc_ax.plot(history['epoch'], accuracy, label=SPLIT_NAMES[split] + hidden, **style)
    row, column = best_epoch(history)
    acc_ax.plot(row['epoch'], 100 * row[column], marker='*', markersize=16, color='gold',
                markeredgecolor='black', linestyle='none', clip_on=False, zorder=5,
                label=f'best {SPLIT_NAMES[column[:-4]]}: {100 * row[column]:.2f}%')
    loss_ax.set(title='Loss', ylabel='cross-entropy (log scale)')
    log_y(loss_ax)
    acc_ax.set(title='Accuracy', ylabel='accuracy (%)')
    for ax in (loss_ax, acc_ax):
        mark_best(ax, history)
        epoch_axis(ax)
    loss_ax.legend()
    acc_ax.legend(loc='lower right', fontsize=9)
    fig.suptitle('Training history')
    return fig


@figure
def combined_metrics(history):
    """Training loss (log scale), validation accuracy and the learning rate in aligned panels over
    the same epochs: how much of the falling training loss still buys accuracy, and where the
    schedule slowed the run down."""
    fig = Figure(figsize=(10, 7.5), layout='constrained')
    loss_ax, acc_ax, lr_ax = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.6])
    row, column = best_epoch(history)
    split = column[:-4]
    line = dict(marker='o', markersize=3)
    loss_ax.plot(history['epoch'], history['train_loss'], color=SPLIT_COLORS['train'], **line)
    acc_ax.plot(history['epoch'], 100 * history[column], color=SPLIT_COLORS[split], **line)
    acc_ax.plot(row['epoch'], 100 * row[column], marker='*', markersize=16, color='gold', clip_on=False,
                markeredgecolor='black', linestyle='none', zorder=5, label=f'best: {100 * row[column]:.2f}%')
    lr_ax.plot(history['epoch'], history['lr'], color='0.3', **line)
    loss_ax.set_ylabel('training loss\n(cross-entropy, log scale)')
    log_y(loss_ax)
    acc_ax.set_ylabel(f'{SPLIT_NAMES[split]} accuracy (%)')
    lr_ax.set(ylabel='learning rate', ylim=(0, None))
    lr_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    for ax in (loss_ax, acc_ax, lr_ax):
        mark_best(ax, history)
    acc_ax.legend(loc='lower right')
    epoch_axis(lr_ax)
    fig.suptitle(f'Training loss, {SPLIT_NAMES[split]} accuracy and learning rate per epoch')
    return fig


@figure
def gradient_norms(history):
    """The mean L2 norm of each weight's gradient per epoch (log scale), one line per layer."""
    columns = [c for c in history.columns if c.startswith('grad_norm_')]
    if not columns:
        raise ValueError('the history has no grad_norm_<layer> columns; it does not come from train.py')
    fig = Figure(figsize=(10, 4.8), layout='constrained')
    ax = fig.subplots()
    layers = [ax.plot(history['epoch'], history[column], marker='o', markersize=3,
                      label=column.removeprefix('grad_norm_'))[0] for column in columns]
    mark_best(ax, history)
    ax.set(ylabel='mean L2 norm of weight gradient\n(log scale)')
    log_y(ax)
    epoch_axis(ax)
    ax.add_artist(ax.legend(handles=layers, title='layer', loc='upper right'))
    ax.legend(handles=best_line(ax), loc='lower left')  # the best epoch is not a layer: a legend of its own
    fig.suptitle('Gradient norm per layer')
    return fig


def best_line(ax):
    return [line for line in ax.get_lines() if line.get_label().startswith('best epoch')]


@figure
def learning_rates(curves, steps_per_epoch, highlight=None):
    """The learning rate of every step under each schedule of `curves` (name -> the rate of each step,
    train.learning_rate), on the epoch axis of the other figures: epoch e runs from e to e + 1, so a
    history's row e (the rate of the epoch's first step) sits at e. `highlight`: the curve of the run."""
    fig = Figure(figsize=(10, 4), layout='constrained')
    ax = fig.subplots()
    for i, (name, rates) in enumerate(curves.items()):
        rates = np.asarray(rates, dtype=float)
        ours = name == highlight
        ax.plot(1 + np.arange(len(rates)) / steps_per_epoch, rates, color=f'C{i}', linewidth=3 if ours else 1.5,
                linestyle='-' if ours or highlight is None else '--', label=name + (' (this run)' if ours else ''),
                zorder=3 if ours else 2)
    epochs = len(next(iter(curves.values()))) / steps_per_epoch
    ax.set(ylabel='learning rate', ylim=(0, None), xlim=(1, 1 + epochs))
    epoch_axis(ax)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    ax.legend(loc='center right')
    fig.suptitle(f'Learning-rate schedules over {epochs:g} epochs of {steps_per_epoch:,} steps, step by step')
    return fig


@figure
def experiments(results):
    """Test accuracy of repeated runs: every seed's run as a point, and each recipe's mean with
    one standard deviation (n - 1) either side, written beside it. `results`: the rows of
    experiments.run_all (columns recipe, seed, test_acc)."""
    recipes = list(dict.fromkeys(results['recipe']))
    fig = Figure(figsize=(10, 1.2 + 0.9 * len(recipes)), layout='constrained')
    ax = fig.subplots()
    every = 100 * results['test_acc']
    close = 0.025 * max(every.max() - every.min(), 0.1)  # runs nearer than about a dot's width are stacked
    for i, recipe in enumerate(recipes):
        runs = results[results['recipe'] == recipe]
        test = 100 * runs['test_acc'].to_numpy()
        mean, std = test.mean(), test.std(ddof=1) if len(test) > 1 else 0.0
        ax.errorbar(mean, i, xerr=std, fmt='D', color='black', markersize=7, capsize=6, zorder=3)
        placed = []
        for value, seed in sorted(zip(test, runs['seed'])):
            y = i + 0.18 + 0.13 * sum(abs(value - other) < close for other in placed)
            placed.append(value)
            ax.scatter(value, y, color=f'C{i}', s=40, zorder=2)
            ax.annotate(f'{seed}', (value, y), xytext=(6, 0), textcoords='offset points', va='center',
                        fontsize=8, color=f'C{i}')
        ax.annotate(f'{mean:.2f} \u00b1 {std:.2f}%  ({len(test)} seeds)', (mean + std, i), xytext=(16, 0),
                    textcoords='offset points', va='center', fontsize=10)
    low, high = ax.get_xlim()
    ax.set_xlim(low, high + 0.35 * (high - low))
    ax.set(yticks=range(len(recipes)), yticklabels=recipes, ylim=(len(recipes) - 0.5, -0.6),
           xlabel='test accuracy of the best-by-validation checkpoint (%)',
           title='Recipes over seeds: each run (dot, its seed beside it), mean \u00b1 standard deviation (diamond, bar)')
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    return fig


# ---------------------------------------------------------------- what the network learned

@figure
def first_layer_weights(weight, activity=None, columns=16):
    """Each unit's weight vector (a row of `weight`, 784 long) as a 28x28 image: red where a
    bright pixel raises the unit's input, blue where it lowers it, every tile scaled to its own
    largest |weight| so that weak units show their pattern too. With `activity` (the share of
    images each unit fires on), dead units are shown as grey tiles: whatever their weights, they
    take no part in any prediction."""
    weight = weight.detach().float().cpu().reshape(len(weight), 28, 28)
    dead = set() if activity is None else set((torch.as_tensor(activity) == 0).nonzero().flatten().tolist())
    rows, size = -(-len(weight) // columns), 29  # a one-pixel gap between tiles
    mosaic = np.full((rows * size - 1, columns * size - 1), np.nan)
    scaled = (weight / weight.abs().amax((1, 2), keepdim=True).clamp_min(1e-12)).numpy()
    fig = Figure(figsize=(9, 8 * rows / columns + 0.5), layout='constrained')
    ax = fig.subplots()
    for i, tile in enumerate(scaled):
        r, c = divmod(i, columns)
        if i in dead:
            ax.add_patch(Rectangle((c * size - 0.5, r * size - 0.5), 28, 28, facecolor='0.82', edgecolor='none'))
        else:
            mosaic[r * size:r * size + 28, c * size:c * size + 28] = tile
    cmap = matplotlib.colormaps['RdBu_r'].with_extremes(bad=(0, 0, 0, 0))  # gaps, dead tiles: see-through
    image = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation='nearest', zorder=2)
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, shrink=0.6, label="weight / the unit's largest |weight|")
    fig.suptitle(f'The {len(weight)} weight vectors of the first layer as 28x28 images'
                 + (f'\n{len(dead)} dead units (never active on the images given) in grey' if activity is not None else ''))
    return fig


@figure
def unit_activity(activities):
    """How often each ReLU unit fires: per layer, its units ranked by the share of images they
    are active on, one line per model (e.g. {'trained': ..., 'at initialisation': ...}, each as
    internals.relu_activity returns it). Dead units are the line's stretch at 0 on the left."""
    layers = list(next(iter(activities.values())))
    fig = Figure(figsize=(11, 4), layout='constrained')
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, layer in zip(axes, layers):
        for i, (name, activity) in enumerate(activities.items()):
            share = np.sort(np.asarray(activity[layer]))
            dead = int((share == 0).sum())
            ax.plot(np.arange(1, len(share) + 1), 100 * share, color=f'C{i}', linewidth=2,
                    label=f'{name}: {dead} dead')
        ax.set(title=layer, xlabel='units, ranked by activity', ylabel='images the unit is active on (%)',
               ylim=(-2, 102), xlim=(0, len(share) + 1))
        ax.legend(loc='upper left')
    fig.suptitle('How often each ReLU unit fires on the validation images')
    return fig


# ---------------------------------------------------------------- evaluation

@figure
def confusion_matrix(evaluation):
    """Counts of true against predicted digits, and the same rows as percentages of each true
    digit. Only the errors are coloured, so that one misclassified image stands out as clearly
    as ten; the diagonal (grey) holds the correct counts and each digit's accuracy."""
    counts = confusion(evaluation)
    percent_of_row = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    diagonal = np.eye(len(DIGITS), dtype=bool)
    hidden = diagonal | (counts == 0)  # blank: no error there
    fig = Figure(figsize=(13, 5.8), layout='constrained')
    count_ax, percent_ax = fig.subplots(1, 2)
    panels = [(count_ax, counts, '%d', {'label': 'misclassified test images', 'ticks': MaxNLocator(integer=True)}),
              (percent_ax, percent_of_row, '%.1f', {'label': "share of the true digit's test images",
                                                    'format': PercentFormatter(100, decimals=1)})]
    for ax, values, number, colorbar in panels:
        sns.heatmap(values, ax=ax, mask=hidden, annot=np.char.mod(number, values), fmt='', cmap=ERRORS, vmin=0,
                    square=True, annot_kws={'fontsize': 9}, linewidths=0.5, linecolor='0.9',
                    cbar_kws={'shrink': 0.8, **colorbar})
        for d in DIGITS:
            ax.add_patch(Rectangle((d, d), 1, 1, facecolor='0.9', edgecolor='white', linewidth=0.5))
            ax.text(d + 0.5, d + 0.5, number % values[d, d], ha='center', va='center',
                    fontsize=9, fontweight='bold', color='#1a6e1a')
        ax.set(xlabel='predicted digit', ylabel='true digit', facecolor='white')
        ax.grid(False)
        ax.tick_params(left=False, bottom=False, labelrotation=0)
    count_ax.set_title('Test images per (true, predicted) pair')
    percent_ax.set_title('Percent of each true digit')
    fig.suptitle(f'Confusion matrix on {len(evaluation.labels):,} test images (accuracy '
                 f'{100 * evaluation.accuracy:.2f}%)\nerrors in red; the grey diagonal is correct')
    return fig


@figure
def prediction_distribution(evaluation):
    """How confident right and wrong predictions are, and which digits the model predicts more
    or less often than they occur (predicted minus true count: the counts themselves are all
    near 1,000 and would hide differences of a few)."""
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
    true, difference = counts.sum(1), counts.sum(0) - counts.sum(1)
    count_ax.bar(DIGITS, difference, color=np.where(difference >= 0, SPLIT_COLORS['train'], SPLIT_COLORS['val']))
    count_ax.axhline(0, color='black', linewidth=1)
    for d in DIGITS:
        count_ax.annotate(f'{difference[d]:+d}', (d, difference[d]), xytext=(0, 4 if difference[d] >= 0 else -4),
                          textcoords='offset points', ha='center', va='bottom' if difference[d] >= 0 else 'top',
                          fontsize=9)
    for y, text, color in ((0.97, 'predicted more often than it occurs', SPLIT_COLORS['train']),
                           (0.03, 'predicted less often than it occurs', SPLIT_COLORS['val'])):
        count_ax.text(0.02, y, text, transform=count_ax.transAxes, color=color, fontsize=9,
                      va='top' if y > 0.5 else 'bottom')
    limit = 1.35 * max(1, np.abs(difference).max())
    count_ax.set(title='Predicted minus true count per digit', ylabel='test images', ylim=(-limit, limit),
                 xticks=DIGITS, xlabel=f'digit (each is {true.min():,} to {true.max():,} of the test images)')
    count_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
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
        ax.set_title(titles[i], fontsize=9.5, color=color, fontweight='bold' if wrong[i] else 'normal')
        for spine in ax.spines.values():
            spine.set(visible=wrong[i], color=WRONG, linewidth=3)


@figure
def sample_predictions(evaluation, images, count=24, columns=8):
    """Three rows of `count // 3` test digits with true label, prediction and confidence: the
    first right ones (what most predictions look like), the first wrong ones and the least
    confident ones, right or wrong. Errors in red."""
    confidence = evaluation.probabilities.max(1).values.cpu()
    true, predicted = evaluation.labels.cpu(), evaluation.predictions.cpu()
    right, wrong = (predicted == true).nonzero().flatten(), (predicted != true).nonzero().flatten()
    per_row = max(1, count // 3)
    unsure = confidence.argsort()[:per_row]
    unsure_wrong = int((predicted[unsure] != true[unsure]).sum())
    # (indices, row title, whether to name the runner-up digit)
    groups = [(right[:per_row], f'Right: the first {min(per_row, len(right))} correct test digits', False),
              (wrong[:per_row], f'Wrong: the first {min(per_row, len(wrong))} of {len(wrong):,} mistakes, in test order'
               if len(wrong) else 'Wrong: none', False),
              (unsure, f'Unsure: the {len(unsure)} least confident predictions '
                       f'({len(unsure) - unsure_wrong} right, {unsure_wrong} wrong) and their second choice', True)]
    columns = min(columns, per_row)
    rows = [max(1, -(-len(indices) // columns)) for indices, _, _ in groups]
    top2 = evaluation.probabilities.cpu().topk(2, dim=1)

    def title(i, runner_up):
        text = f'true {true[i]:d}, pred {predicted[i]:d}\n{percent(confidence[i].item())}'
        return text + f', or {top2.indices[i, 1]:d}: {percent(top2.values[i, 1].item())}' if runner_up else text

    fig = Figure(figsize=(1.5 * columns, 1.6 * sum(rows) + 0.35 * len(groups) + 0.4), layout='constrained')
    for subfig, (indices, name, runner_up) in zip(fig.subfigures(len(groups), 1, height_ratios=rows), groups):
        indices = indices.tolist()
        subfig.suptitle(name, fontsize=11, x=0.01, ha='left')
        digit_grid(subfig, images[indices], [title(i, runner_up) for i in indices],
                   [true[i] != predicted[i] for i in indices], columns)
    fig.suptitle(f'Sample predictions on {len(true):,} test digits: {len(right):,} right, {len(wrong):,} wrong (in red)')
    return fig


def probability_of(digit, p):
    """'p(4) = 12.3%', or 'p(4) > 99.9%' where `percent` says no more than a bound."""
    text = percent(float(p))
    return f'p({int(digit)}) {text[0]} {text[1:]}' if text[0] in '<>' else f'p({int(digit)}) = {text}'


@figure
def confident_mistakes(evaluation, images, count=16, columns=8):
    """The wrong predictions the model was most sure of: what it saw, what it said, and the
    probability it gave the true digit, with the decimals that tell the tiles apart."""
    probabilities = evaluation.probabilities.cpu()
    true, predicted = evaluation.labels.cpu(), evaluation.predictions.cpu()
    confidence = probabilities.max(1).values
    wrong = (predicted != true).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:count].tolist()
    fig = Figure(figsize=(1.4 * columns, 1.9 * max(1, -(-len(worst) // columns)) + 0.4), layout='constrained')
    titles = [f'true {true[i]:d}, pred {predicted[i]:d}\n{probability_of(predicted[i], confidence[i])}\n'
              f'{probability_of(true[i], probabilities[i, true[i]])}' for i in worst]
    digit_grid(fig, images[worst], titles, [True] * len(worst), columns)
    fig.suptitle(f'The {len(worst)} most confident of {len(wrong):,} mistakes' if worst else 'No mistakes')
    return fig


# ---------------------------------------------------------------- calibration

def wilson_interval(successes, n, z=1.96):
    """95% Wilson score interval of a binomial proportion: honest for small n and for 0 or n."""
    p = successes / n
    centre, half = p + z ** 2 / (2 * n), z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2))
    return (centre - half) / (1 + z ** 2 / n), (centre + half) / (1 + z ** 2 / n)


def as_pair(result):
    """(probabilities, labels) from an Evaluation or such a pair."""
    if isinstance(result, Evaluation):
        return result.probabilities, result.labels
    probabilities, labels = result
    return torch.as_tensor(probabilities), torch.as_tensor(labels)


@figure
def reliability_diagram(results, labels=None, bins=10, ece_bins=15):
    """Accuracy against mean confidence in `bins` equal-count bins (metrics.equal_count_bins: every
    point stands for as many predictions, so none rests on a handful), with 95% intervals and the
    diagonal of perfect calibration; below, the predictions in each of the ECE's `ece_bins`
    equal-width bins; in the legend the ECE (metrics.expected_calibration_error: equal-width bins, the
    numbers evaluate.py prints).

    `results`: an Evaluation; a (N, classes) probability tensor with `labels`; or, to compare (e.g.
    before and after calibration), a dict name -> Evaluation or (probabilities, labels), or name ->
    {part: either of those}, whose points pool the parts and whose legend gives each part's ECE (the
    two halves of the drawn digits, as evaluate.py --drawn reports them)."""
    if not isinstance(results, dict):
        results = {'': results if labels is None else (results, labels)}
    fig = Figure(figsize=(7, 8), layout='constrained')
    curve_ax, count_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
    curve_ax.plot([0, 1], [0, 1], color='0.5', linestyle='--', linewidth=1, label='perfect calibration')
    width = 0.9 / ece_bins / len(results)
    for i, (name, result) in enumerate(results.items()):
        parts = {part: as_pair(r) for part, r in result.items()} if isinstance(result, dict) else {'': as_pair(result)}
        probabilities = torch.cat([p.cpu() for p, _ in parts.values()])
        truth = torch.cat([t.cpu() for _, t in parts.values()])
        ece = ', '.join(f'{part + " " if part else ""}{100 * expected_calibration_error(p, t, ece_bins):.2f}%'
                        for part, (p, t) in parts.items())
        b = equal_count_bins(probabilities, truth, bins)
        low, high = wilson_interval(b['accuracy'] * b['count'], b['count'])
        color = f'C{i}'
        curve_ax.errorbar(b['confidence'], b['accuracy'], color=color, marker='o', markersize=5, capsize=3,
                          yerr=np.clip([b['accuracy'] - low, high - b['accuracy']], 0, None),  # 0, not -1e-17
                          label=f'{name + ": " if name else ""}ECE {ece} ({len(truth):,} predictions)')
        count, _, _ = calibration_bins(probabilities, truth, ece_bins)
        left = np.arange(ece_bins) / ece_bins + 0.05 / ece_bins + i * width
        count_ax.bar(left[count > 0], count[count > 0], width, align='edge', color=color)
    curve_ax.set(ylabel='accuracy in the bin', xlim=(0, 1), ylim=(0, 1.02))
    fig.suptitle(f'Reliability diagram: {bins} equal-count confidence bins\n'
                 f'ECE over {ece_bins} equal-width bins, as evaluate.py reports it')
    curve_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    fig.legend(*curve_ax.get_legend_handles_labels(), loc='outside lower center',
               title=f'accuracy of each 1/{bins} of the predictions by confidence, with 95% intervals')
    count_ax.set(xlabel='confidence (highest predicted probability)', yscale='log',
                 ylabel=f'predictions per\nECE bin (log scale)')
    count_ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    return fig


@figure
def drawn_mistakes(drawings, predictions, labels, notes=None, columns=4):
    """The wrong readings of drawings: for each, the strokes as drawn on the app's canvas and the 28x28
    image the model read (ink dark on light, as every digit figure), captioned with the true digit, the
    one read, its confidence and `notes` (e.g. the writer). `drawings`: each a list of strokes in canvas
    pixels (evaluate.on_canvas); `predictions`: the predict.Prediction of each."""
    wrong = [i for i, (p, label) in enumerate(zip(predictions, labels)) if p.digit != label]
    rows = max(1, -(-len(wrong) // columns))
    fig = Figure(figsize=(2.7 * columns, 1.75 * rows + 0.8), layout='constrained')
    fig.suptitle(f'{len(wrong)} wrong of {len(labels):,} drawings: as drawn, and the 28x28 image the model read'
                 if wrong else f'No mistakes on {len(labels):,} drawings')
    for k, cell in enumerate(fig.subfigures(rows, columns, squeeze=False).flat if wrong else []):
        if k >= len(wrong):
            continue
        i, prediction = wrong[k], predictions[wrong[k]]
        drawn_ax, read_ax = cell.subplots(1, 2)
        for stroke in drawings[i]:
            xs, ys = zip(*stroke)
            drawn_ax.plot(xs, ys, color='black', linewidth=2.5, marker='o' if len(stroke) == 1 else None,
                          markersize=2.5, solid_capstyle='round', solid_joinstyle='round')
        drawn_ax.set(xlim=(0, CANVAS), ylim=(CANVAS, 0), aspect='equal')
        read_ax.imshow(prediction.model_input, cmap='gray_r', interpolation='nearest')
        for ax, header in ((drawn_ax, 'as drawn'), (read_ax, 'model input')):
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            if k < columns:  # column headers on the first row
                ax.set_title(header, fontsize=9, color='0.35')
        cell.suptitle(f'true {labels[i]}, read {prediction.digit} ({percent(prediction.confidence)})'
                      + (f'\n{notes[i]}' if notes else ''), fontsize=10, color=WRONG)
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
    ax.set(xlabel='digit', ylabel='share of the split (%)', xticks=DIGITS, ylim=(0, 15))
    fig.suptitle('Class balance')
    ax.legend(loc='upper center', ncols=len(splits))
    return fig


# ---------------------------------------------------------------- numbers

@figure
def number_readings(numbers, readings, columns=2):
    """Written numbers as `predict.DigitClassifier.read` read them: each drawing's strokes as ink on paper, a
    thin box around each group of strokes read as one digit with that digit under it, and the reading with
    its confidence above; a number read wrong is titled in red. `numbers`: [(label, strokes)]."""
    rows = max(1, -(-len(readings) // columns))
    fig = Figure(figsize=(6 * columns, 2.3 * rows), layout='constrained')
    for ax, (label, strokes), reading in zip(fig.subplots(rows, columns, squeeze=False).flat, numbers, readings):
        for stroke in strokes:
            xs, ys = zip(*stroke)
            ax.plot(xs, ys, color='black', linewidth=2.5, solid_capstyle='round', solid_joinstyle='round')
        for (x0, y0, x1, y1), prediction in zip(reading.boxes, reading.digits):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor='#2f6fed', linewidth=1))
            shown = '?' if prediction.verdict == NOT_A_DIGIT else str(prediction.digit)
            ax.annotate(shown, ((x0 + x1) / 2, y1), xytext=(0, -4), textcoords='offset points', ha='center',
                        va='top', color='#2f6fed', fontsize=11, fontweight='bold')
        right = reading.number == label
        ax.set_title(f'written {label}, read {reading.number or "nothing"} ({percent(reading.confidence)}, '
                     f'{reading.verdict})', fontsize=10, color='black' if right else WRONG)
        ax.set_aspect('equal')
        ax.invert_yaxis()
        ax.margins(0.08, 0.25)
        ax.set_axis_off()
    for ax in fig.axes[len(readings):]:
        ax.set_axis_off()
    fig.suptitle('Written numbers, read whole: each box is a group of strokes read as one digit')
    return fig
