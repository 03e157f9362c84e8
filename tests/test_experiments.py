"""experiments.py: a run's row, and the README quoting the cached results it rests on."""
import re

import experiments
from conftest import ROOT


def test_a_run_records_its_best_by_validation_checkpoint(splits):
    row = experiments.run('he', 3, splits(), epochs=2, train_subset=1000)
    assert row['command'] == 'python train.py --init he --epochs 2 --train-subset 1000 --seed 3'
    assert row['epochs'] == 2 and row['best_epoch'] in (1, 2)
    assert 0.5 < row['val_acc'] <= 1 and 0.5 < row['test_acc'] <= 1  # chance is 0.1
    assert row['seconds'] > 0 and row['machine']


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
