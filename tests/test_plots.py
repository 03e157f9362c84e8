"""Each figure on a synthetic history and synthetic predictions: the expected axes and titles,
and a PNG written when a path is given."""
import math

import matplotlib.legend
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.ticker import PercentFormatter

import metrics
import plots
from metrics import Evaluation, confusion


def synthetic_history(epochs=6, val=True):
    """Validation accuracy peaks at epoch 4, test accuracy at epoch 5; without val, NaN as train.py writes."""
    return pd.DataFrame([
        {'epoch': e, 'lr': 1e-3, 'train_loss': 1 / e, 'train_acc': 1 - 0.1 / e,
         'grad_norm_first_layer': 2 / e, 'grad_norm_output_layer': 0.5 / e,
         'val_loss': 0.5 + abs(e - 4) / 10 if val else math.nan,
         'val_acc': 0.95 - abs(e - 4) / 100 if val else math.nan,
         'test_loss': 0.4 + abs(e - 5) / 10, 'test_acc': 0.96 - abs(e - 5) / 100, 'epoch_time': 1.0}
        for e in range(1, epochs + 1)])


def synthetic_evaluation(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    logits = torch.randn(n, 10, generator=g)
    logits[torch.arange(n), labels] += 3  # mostly right, some wrong
    probabilities = logits.softmax(1)
    predictions = probabilities.argmax(1)
    return Evaluation(loss=0.5, accuracy=(predictions == labels).float().mean().item(),
                      predictions=predictions, probabilities=probabilities, labels=labels)


def images(n=200):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def saved(fig, path):
    assert path.read_bytes().startswith(b'\x89PNG') and path.stat().st_size > 5000
    return fig


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def best_line(ax):
    return [line for line in ax.get_lines() if line.get_label().startswith('best epoch')]


def test_training_history_marks_best_validation_epoch(tmp_path):
    fig = saved(plots.training_history(synthetic_history(), path=tmp_path / 'h.png'), tmp_path / 'h.png')
    loss_ax, acc_ax = fig.axes
    assert titles(fig) == ['Loss', 'Accuracy'] and fig.get_suptitle() == 'Training history'
    assert loss_ax.get_yscale() == 'log' and acc_ax.get_ylabel() == 'accuracy (%)'
    assert best_line(acc_ax)[0].get_xdata()[0] == 4  # val_acc peaks at epoch 4, test_acc at 5
    assert {'validation', 'test'} <= {line.get_label() for line in acc_ax.get_lines()}
    # the axis is scaled to validation and test (92-96%); training's 90% at epoch 1 is below it, and said so
    low, high = acc_ax.get_ylim()
    assert 91 < low < 92 and 98.4 < high < 99.5  # training tops out at 98.3%
    assert 'training (epoch 1 below the axis, from 90.0%)' in {line.get_label() for line in acc_ax.get_lines()}
    star, = [line for line in acc_ax.get_lines() if line.get_marker() == '*']
    assert not star.get_clip_on()


def test_subject_names_the_model_and_data_under_the_title():
    fig = plots.training_history(synthetic_history(), subject='MLP on MNIST')
    assert fig.get_suptitle() == 'Training history\nMLP on MNIST'
    for draw in (plots.gradient_norms, plots.combined_metrics):
        assert draw(synthetic_history(), subject='MLP on MNIST').get_suptitle().endswith('\nMLP on MNIST')


def test_a_loss_within_a_narrow_range_gets_several_tick_labels():
    history = synthetic_history().assign(train_loss=lambda h: 0.72 + 0.3 / h['epoch'])  # 0.77 to 1.02
    loss_ax = plots.combined_metrics(history).axes[0]
    low, high = loss_ax.get_ylim()
    labels = [t for t in loss_ax.get_yticks() if low <= t <= high]
    assert len(labels) >= 3, labels


def test_best_epoch_falls_back_to_test_accuracy_without_validation():
    history = synthetic_history(val=False)
    row, column = plots.best_epoch(history)
    assert (row['epoch'], column) == (5, 'test_acc')
    fig = plots.training_history(history)
    assert 'validation' not in {line.get_label() for line in fig.axes[1].get_lines()}
    fig = plots.combined_metrics(history)
    assert fig.axes[1].get_ylabel() == 'test accuracy (%)'


def test_combined_metrics_aligns_loss_accuracy_and_learning_rate(tmp_path):
    history = synthetic_history().assign(lr=lambda h: 1e-3 / h['epoch'])
    fig = saved(plots.combined_metrics(history, path=tmp_path / 'c.png'), tmp_path / 'c.png')
    loss_ax, acc_ax, lr_ax = fig.axes  # three panels, no twin axis
    assert loss_ax.get_shared_x_axes().joined(loss_ax, lr_ax) and acc_ax.get_shared_x_axes().joined(acc_ax, lr_ax)
    assert loss_ax.get_yscale() == 'log' and 'training loss' in loss_ax.get_ylabel()
    assert acc_ax.get_ylabel() == 'validation accuracy (%)' and lr_ax.get_ylabel() == 'learning rate'
    assert list(lr_ax.get_lines()[0].get_ydata()) == list(history['lr'])
    assert [best_line(ax)[0].get_xdata()[0] for ax in fig.axes] == [4, 4, 4]


def test_a_one_epoch_history_has_whole_epoch_ticks():
    for draw in (plots.training_history, plots.combined_metrics, plots.gradient_norms):
        ax = draw(synthetic_history(epochs=1)).axes[-1]
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1], (draw.__name__, ticks)


def test_gradient_norms_finds_every_layer(tmp_path):
    history = synthetic_history().assign(grad_norm_middle=0.3)
    fig = saved(plots.gradient_norms(history, path=tmp_path / 'g.png'), tmp_path / 'g.png')
    ax, = fig.axes
    assert ax.get_yscale() == 'log' and fig.get_suptitle() == 'Gradient norm per layer'
    layers = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith('best')]
    assert layers == ['first_layer', 'output_layer', 'middle']
    layer_legend, best_legend = [a for a in ax.get_children() if isinstance(a, matplotlib.legend.Legend)]
    assert [t.get_text() for t in layer_legend.get_texts()] == layers and layer_legend.get_title().get_text() == 'layer'
    assert [t.get_text() for t in best_legend.get_texts()] == ['best epoch (4)']  # not listed as a layer
    with pytest.raises(ValueError, match='grad_norm'):
        plots.gradient_norms(history.drop(columns=['grad_norm_first_layer', 'grad_norm_output_layer',
                                                    'grad_norm_middle']))


def test_confusion_matrix(tmp_path):
    evaluation = synthetic_evaluation()
    fig = saved(plots.confusion_matrix(evaluation, path=tmp_path / 'm.png'), tmp_path / 'm.png')
    count_ax, percent_ax = fig.axes[:2]
    assert count_ax.get_xlabel() == 'predicted digit' and count_ax.get_ylabel() == 'true digit'
    assert f'{100 * evaluation.accuracy:.2f}%' in fig.get_suptitle()
    # the count annotations add up to the number of images
    assert sum(int(t.get_text()) for t in count_ax.texts) == len(evaluation.labels)
    # only errors are coloured: the diagonal and the empty cells are masked out of the colour map
    counts = confusion(evaluation)
    for ax in (count_ax, percent_ax):
        mesh = ax.collections[0]
        assert (np.ma.getmaskarray(mesh.get_array()).reshape(10, 10) == (np.eye(10, dtype=bool) | (counts == 0))).all()
    # one error is visibly coloured, not white
    mesh = count_ax.collections[0]
    assert sum(mesh.cmap(mesh.norm(1))[:3]) < 2.8
    # the percentage colour bar reads in percent
    formatter = percent_ax.collections[0].colorbar.formatter
    assert isinstance(formatter, PercentFormatter) and formatter(1.0, 0) == '1.0%'


def test_prediction_distribution(tmp_path):
    evaluation = synthetic_evaluation()
    fig = saved(plots.prediction_distribution(evaluation, path=tmp_path / 'p.png'), tmp_path / 'p.png')
    hist_ax, count_ax = fig.axes
    assert titles(fig)[0] == 'Confidence of each prediction' and hist_ax.get_yscale() == 'log'
    wrong = (evaluation.predictions != evaluation.labels).sum().item()
    assert f'wrong ({wrong})' in [t.get_text() for t in hist_ax.get_legend().get_texts()]
    # one bar per digit: how many more times it was predicted than it occurs
    counts = confusion(evaluation)
    heights = [bar.get_height() for bar in count_ax.patches]
    assert heights == list(counts.sum(0) - counts.sum(1)) and sum(heights) == 0 and any(heights)
    assert count_ax.get_legend() is None


def tile_digits(ax):
    true, predicted = ax.get_title().split('\n')[0].removeprefix('true ').split(', pred ')
    return int(true), int(predicted)


def test_sample_predictions_shows_right_wrong_and_unsure_rows(tmp_path):
    evaluation = synthetic_evaluation()
    fig = saved(plots.sample_predictions(evaluation, images(), count=12, columns=6, path=tmp_path / 's.png'),
                tmp_path / 's.png')
    right_row, wrong_row, unsure_row = fig.subfigs
    assert [len(row.axes) for row in fig.subfigs] == [4, 4, 4]
    for ax in right_row.axes:
        true, predicted = tile_digits(ax)
        assert true == predicted and not ax.spines['top'].get_visible()
    wrong = (evaluation.predictions != evaluation.labels).nonzero().flatten()
    assert [tile_digits(ax) for ax in wrong_row.axes] == [
        (evaluation.labels[i].item(), evaluation.predictions[i].item()) for i in wrong[:4]]
    assert all(ax.spines['top'].get_visible() for ax in wrong_row.axes)
    unsure = evaluation.probabilities.max(1).values.argsort()[:4]
    assert [tile_digits(ax) for ax in unsure_row.axes] == [
        (evaluation.labels[i].item(), evaluation.predictions[i].item()) for i in unsure]
    assert ', or ' in unsure_row.axes[0].get_title()  # the runner-up of an unsure prediction
    assert f'{len(wrong)} wrong' in fig.get_suptitle()


def test_sample_predictions_finds_wrong_cases_beyond_the_first_images():
    evaluation = synthetic_evaluation()
    evaluation.predictions = evaluation.labels.clone()
    evaluation.predictions[150] = (evaluation.labels[150] + 1) % 10  # the only mistake, far down
    fig = plots.sample_predictions(evaluation, images(), count=24)
    assert [tile_digits(ax) for ax in fig.subfigs[1].axes if ax.get_title()] == [
        (evaluation.labels[150].item(), evaluation.predictions[150].item())]
    evaluation.predictions = evaluation.labels
    assert plots.sample_predictions(evaluation, images()).subfigs[1].get_suptitle() == 'Wrong: none'


def test_probabilities_are_titled_without_a_stray_equals_sign():
    assert [plots.probability_of(4, p) for p in (0.123, 0.9999, 1e-5)] == ['p(4) = 12.3%', 'p(4) > 99.9%',
                                                                           'p(4) < 0.1%']


def test_confident_mistakes_are_wrong_and_sorted(tmp_path):
    evaluation = synthetic_evaluation()
    fig = saved(plots.confident_mistakes(evaluation, images(), count=5, path=tmp_path / 'x.png'),
                tmp_path / 'x.png')
    shown = [ax for ax in fig.axes if ax.get_title()]
    assert len(shown) == 5
    confidence = evaluation.probabilities.max(1).values
    wrong = (evaluation.predictions != evaluation.labels).nonzero().flatten()
    expected = wrong[confidence[wrong].argsort(descending=True)][:5]
    for ax, i in zip(shown, expected.tolist()):
        true, predicted = tile_digits(ax)
        assert (true, predicted) == (evaluation.labels[i].item(), evaluation.predictions[i].item()) and true != predicted
        assert ax.get_title().split('\n')[1:] == [plots.probability_of(predicted, confidence[i]),
                                                  plots.probability_of(true, evaluation.probabilities[i, true])]
    perfect = synthetic_evaluation()
    perfect.predictions = perfect.labels
    assert plots.confident_mistakes(perfect, images()).get_suptitle() == 'No mistakes'


def test_reliability_diagram_compares_before_and_after(tmp_path):
    evaluation = synthetic_evaluation(n=500)
    sharpened = (evaluation.probabilities.log() * 3).softmax(1)  # overconfident
    fig = saved(plots.reliability_diagram({'before': (sharpened, evaluation.labels), 'after': evaluation},
                                          path=tmp_path / 'r.png'), tmp_path / 'r.png')
    curve_ax, count_ax = fig.axes
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for name, probabilities in (('before', sharpened), ('after', evaluation.probabilities)):
        ece = metrics.expected_calibration_error(probabilities, evaluation.labels)
        assert f'{name}: ECE {100 * ece:.2f}% (500 predictions)' in legend
    assert 'perfect calibration' in legend and '15 equal-width' in fig.get_suptitle()
    assert '10 equal-count' in fig.get_suptitle()
    diagonal = [line for line in curve_ax.get_lines() if line.get_label() == 'perfect calibration'][0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, 1]
    points = [line for line in curve_ax.get_lines() if line.get_marker() == 'o']
    expected = metrics.equal_count_bins(sharpened, evaluation.labels)
    assert list(points[0].get_xdata()) == list(expected['confidence']) and len(points[0].get_xdata()) == 10
    assert sum(bar.get_height() for bar in count_ax.patches) == 2 * 500  # every prediction in one bin, per model
    single = plots.reliability_diagram(evaluation.probabilities, evaluation.labels)
    assert [t.get_text() for t in single.legends[0].get_texts()][1].startswith('ECE ')


def test_reliability_diagram_pools_parts_and_gives_each_parts_ece():
    """The drawn digits' halves: one curve over both, the ECE of each half as evaluate.py reports it."""
    first, second = synthetic_evaluation(n=300, seed=0), synthetic_evaluation(n=200, seed=1)
    fig = plots.reliability_diagram({'CNN': {'dev': first, 'test': (second.probabilities, second.labels)}})
    ece = [metrics.expected_calibration_error(e.probabilities, e.labels) for e in (first, second)]
    assert f'CNN: ECE dev {100 * ece[0]:.2f}%, test {100 * ece[1]:.2f}% (500 predictions)' in [
        t.get_text() for t in fig.legends[0].get_texts()]
    pooled = metrics.equal_count_bins(torch.cat([first.probabilities, second.probabilities]),
                                      torch.cat([first.labels, second.labels]))
    points, = [line for line in fig.axes[0].get_lines() if line.get_marker() == 'o']
    assert list(points.get_ydata()) == list(pooled['accuracy'])


class Reading:  # what plots.drawn_mistakes reads of a predict.Prediction
    def __init__(self, digit, confidence):
        self.digit, self.confidence = digit, confidence
        self.model_input = np.zeros((28, 28), dtype=np.uint8)


def test_drawn_mistakes_shows_each_wrong_drawing_and_its_model_input(tmp_path):
    drawings = [[[(100, 50), (120, 230)]], [[(50, 50), (200, 60)], [(140, 140)]], [[(10, 10), (20, 20)]]]
    readings = [Reading(1, 0.9), Reading(5, 0.42), Reading(3, 0.999)]
    fig = saved(plots.drawn_mistakes(drawings, readings, [1, 7, 8], notes=['W01', 'W02', 'W03'], columns=2,
                                     path=tmp_path / 'dm.png'), tmp_path / 'dm.png')
    assert fig.get_suptitle().startswith('2 wrong of 3 drawings')
    captions = [cell.get_suptitle() for cell in fig.subfigs if cell.axes]
    assert captions == ['true 7, read 5 (42.0%)\nW02', 'true 8, read 3 (>99.9%)\nW03']
    drawn, read = fig.subfigs[0].axes
    assert (drawn.get_title(), read.get_title()) == ('as drawn', 'model input')  # column headers
    assert drawn.get_ylim() == (280, 0) and len(drawn.get_lines()) == 2  # y down, as on the canvas; both strokes
    assert read.get_images()[0].get_cmap().name == 'gray_r'  # ink dark on light, as every digit figure
    assert plots.drawn_mistakes(drawings[:1], readings[:1], [1]).get_suptitle() == 'No mistakes on 1 drawings'


def test_data_figures(tmp_path):
    labels = torch.arange(40) % 10
    fig = saved(plots.data_samples(images(40), labels, count=16, path=tmp_path / 'd.png'), tmp_path / 'd.png')
    assert [ax.get_title() for ax in fig.axes][:3] == ['label 0', 'label 1', 'label 2']
    fig = saved(plots.class_balance({'train': labels, 'test': labels[:10]}, path=tmp_path / 'b.png'),
                tmp_path / 'b.png')
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ['training (40)', 'test (10)']


def test_learning_rates_puts_every_step_on_the_epoch_axis(tmp_path):
    steps = np.linspace(1e-3, 0, 60, endpoint=False)  # 6 epochs of 10 steps
    fig = saved(plots.learning_rates({'decay': steps, 'flat': [1e-3] * 60}, 10, highlight='decay',
                                     path=tmp_path / 'lr.png'), tmp_path / 'lr.png')
    ax, = fig.axes
    decay, flat = ax.get_lines()
    # epochs counted 1-6 as in every figure: step 0 at 1, step 10 starts epoch 2
    assert decay.get_xdata()[0] == 1 and decay.get_xdata()[10] == 2 and decay.get_xdata()[-1] == pytest.approx(6.9)
    assert ax.get_xlabel() == 'epoch' and ax.get_xlim() == (1, 7)
    assert [line.get_label() for line in (decay, flat)] == ['decay (this run)', 'flat']
    assert decay.get_linewidth() > flat.get_linewidth()


def test_experiments_shows_each_seed_and_the_mean_and_standard_deviation(tmp_path):
    results = pd.DataFrame({'recipe': ['a'] * 3 + ['b'] * 3, 'seed': [0, 1, 2] * 2,
                            'test_acc': [0.97, 0.98, 0.99, 0.99, 0.99, 0.99]})
    fig = saved(plots.experiments(results, path=tmp_path / 'e.png'), tmp_path / 'e.png')
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert '98.00 ± 1.00%  (3 seeds)' in texts and '99.00 ± 0.00%  (3 seeds)' in texts  # std with n - 1
    assert [label.get_text() for label in ax.get_yticklabels()] == ['a', 'b']
    points = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert sorted(points[:, 0].round(6)) == [97, 98, 99, 99, 99, 99]  # every seed's run, in percent
    tied = points[points[:, 1] > 1]  # recipe b's three equal runs: stacked, not drawn over each other
    assert len(set(tied[:, 1].round(6))) == 3 and texts.count('0') == texts.count('1') == texts.count('2') == 2


def test_first_layer_weights_greys_out_dead_units(tmp_path):
    weight = torch.randn(32, 784, generator=torch.Generator().manual_seed(0))
    activity = torch.full((32,), 0.5)
    activity[[3, 17]] = 0
    fig = saved(plots.first_layer_weights(weight, activity, columns=8, path=tmp_path / 'w.png'), tmp_path / 'w.png')
    ax = fig.axes[0]
    mosaic = np.ma.filled(ax.get_images()[0].get_array().astype(float), np.nan)  # gaps and dead tiles: NaN
    assert mosaic.shape == (4 * 29 - 1, 8 * 29 - 1)
    assert np.isnan(mosaic[0:28, 3 * 29:3 * 29 + 28]).all() and not np.isnan(mosaic[0:28, 0:28]).any()
    assert np.nanmax(abs(mosaic)) == pytest.approx(1)  # each tile scaled to its own largest |weight|
    assert len(ax.patches) == 2 and '2 dead units' in fig.get_suptitle()


def test_unit_activity_ranks_units_and_counts_the_dead(tmp_path):
    trained = {'first': torch.tensor([0.0, 0.0, 0.5, 1.0]), 'second': torch.tensor([0.2, 0.1])}
    initial = {'first': torch.tensor([0.5, 0.5, 0.5, 0.5]), 'second': torch.tensor([0.0, 0.3])}
    fig = saved(plots.unit_activity({'trained': trained, 'init': initial}, path=tmp_path / 'u.png'), tmp_path / 'u.png')
    first, second = fig.axes
    assert list(first.get_lines()[0].get_ydata()) == [0, 0, 50, 100]
    assert [t.get_text() for t in first.get_legend().get_texts()] == ['trained: 2 dead', 'init: 0 dead']
    assert [t.get_text() for t in second.get_legend().get_texts()] == ['trained: 0 dead', 'init: 1 dead']
