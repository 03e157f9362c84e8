"""experiments.py: a run's row, and the README quoting the cached results it rests on."""
import re

import experiments
from files import ROOT


def test_a_run_records_its_best_by_validation_checkpoint(splits):
    row = experiments.run('he', 3, splits(), epochs=2, train_subset=1000)
    assert row['command'] == 'python train.py --init he --epochs 2 --train-subset 1000 --seed 3'
    assert row['epochs'] == 2 and row['best_epoch'] in (1, 2)
    assert 0.5 < row['val_acc'] <= 1 and 0.5 < row['test_acc'] <= 1  # chance is 0.1
    assert row['seconds'] > 0 and row['machine']


def test_a_rerun_replaces_its_rows_and_keeps_the_others(tmp_path, monkeypatch):
    cache = tmp_path / 'experiments.csv'
    fake = lambda recipe, seed, splits, **options: {'recipe': recipe, 'seed': seed, 'test_acc': 0.5 + seed / 100,
                                                    'val_acc': 0.5, 'best_epoch': 1, 'epochs': 1, 'seconds': 1.0}
    monkeypatch.setattr(experiments, 'run', fake)
    monkeypatch.setattr(experiments, 'load_splits', lambda data_dir: None)
    experiments.run_all(('he', 'default'), (0, 1), out=cache)
    monkeypatch.setattr(experiments, 'run', lambda *args, **options: {**fake(*args), 'test_acc': 0.9})
    experiments.run_all(('default',), (1, 2), out=cache)
    rows = experiments.load(cache)
    assert list(zip(rows['recipe'], rows['seed'], rows['test_acc'])) == [
        ('default', 0, 0.5), ('default', 1, 0.9), ('default', 2, 0.9), ('he', 0, 0.5), ('he', 1, 0.51)]


def test_the_readme_states_every_recipe_as_the_cache_measures_it():
    """Each recipe's mean +- standard deviation over its seeds, as the README's results table
    states it, and the cache has at least 3 seeds of each of the README's recipes."""
    readme = (ROOT / 'README.md').read_text()
    summary = experiments.summary(experiments.load())
    assert set(summary.index) >= set(experiments.RECIPES), summary.index
    for recipe, row in summary.iterrows():
        assert row['seeds'] >= 3, recipe
        stated = re.search(rf'^\| `{re.escape(recipe)}` \|.*?\| \*\*(\d+\.\d\d) ± (\d+\.\d\d)%\*\*', readme, re.M)
        assert stated, f'README.md has no results row for {recipe}'
        assert stated.groups() == (f'{row["test_mean"]:.2f}', f'{row["test_std"]:.2f}'), recipe
