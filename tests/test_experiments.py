"""experiments.py: a run's row, and the cache of runs (what docs/results.md states: tests/test_docs.py)."""

import experiments


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

