"""Repeat training recipes over seeds, so that a claim about a recipe rests on more than one run.

    python experiments.py                          # every recipe, seeds 0 1 2, into the cache CSV
    python experiments.py --recipes default he --seeds 0 1 2 3 --out /tmp/more.csv

Each (recipe, seed) run is `train.train` into a temporary checkpoint folder (deleted afterwards);
what is kept is one row: the best-by-validation epoch, its validation and test accuracy, the wall
time and the machine. The notebook reads the cached rows and plots them (plots.experiments).
"""
import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import files
import train
from data import load_splits
from files import DATA_DIR, PLOTS_DIR, ROOT

CACHE = PLOTS_DIR / 'experiments.csv'
SEEDS = (0, 1, 2)
# name -> train.train options: the README's recipe claims, each against the default
RECIPES = {
    'original': {'preset': 'original'},  # the default at a constant learning rate
    'default': {},                      # cosine decay from 1e-3, Xavier init
    'he': {'init': 'he'},               # the default with He init
    'mlp-best': {'preset': 'mlp-best'},
}


def command(options, seed):
    """The train.py command line of a run."""
    return ' '.join(['python train.py'] + [f'{train.flag(k)} {v}' for k, v in options.items()] + [f'--seed {seed}'])


def run(recipe, seed, splits, verbose=False, **options):
    """Train `recipe` (a RECIPES name) with `seed` on `splits`; options override the recipe
    (e.g. epochs=1 for a smoke test). Returns the run's row."""
    options = {**RECIPES[recipe], **options}
    with tempfile.TemporaryDirectory(prefix='experiment-') as folder:
        output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        tic = time.perf_counter()
        with output:
            result = train.train(data=splits, seed=seed, checkpoint_dir=folder, progress=False, **options)
        seconds = time.perf_counter() - tic
    history = result['history']
    best = history.loc[history['val_acc'].idxmax()]  # the first maximum, as training keeps it
    return {'recipe': recipe, 'seed': seed, 'best_epoch': int(best['epoch']), 'epochs': len(history),
            'val_acc': best['val_acc'], 'test_acc': result['test'].accuracy, 'seconds': round(seconds, 1),
            'command': command(options, seed), 'machine': train.machine(train.resolve_device('auto')), 'torch': torch.__version__}


def run_all(recipes=tuple(RECIPES), seeds=SEEDS, out=CACHE, data_dir=DATA_DIR, **options):
    """Every (recipe, seed) run. The CSV at `out` keeps its other rows: a (recipe, seed) run again
    replaces its row, so seeds added later or one recipe rerun join the cache. It is written after
    each run, so a long batch interrupted keeps what it finished. Returns this call's rows."""
    splits = load_splits(data_dir)
    kept = load(out) if out and Path(out).exists() else pd.DataFrame()
    rows = []
    for recipe in recipes:
        for seed in seeds:
            rows.append(run(recipe, seed, splits, **options))
            row = rows[-1]
            print(f"{recipe:>9} seed {seed}: test {100 * row['test_acc']:.2f}% (val {100 * row['val_acc']:.2f}%, "
                  f"epoch {row['best_epoch']}/{row['epochs']}), {row['seconds']:.0f} s", flush=True)
            if out:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                table = merged(kept, pd.DataFrame(rows))
                files.atomic_write(out, lambda f: table.to_csv(f, index=False))
    return pd.DataFrame(rows)


def merged(kept, new):
    """The rows of `kept` whose (recipe, seed) is not in `new`, then `new`'s; by recipe (RECIPES order), then seed."""
    if len(kept):
        replaced = kept.set_index(['recipe', 'seed']).index.isin(new.set_index(['recipe', 'seed']).index)
        new = pd.concat([kept[~replaced], new], ignore_index=True)
    order = {recipe: i for i, recipe in enumerate(RECIPES)}
    return new.sort_values(['recipe', 'seed'], key=lambda c: c.map(order) if c.name == 'recipe' else c,
                           ignore_index=True)


def load(path=CACHE):
    return pd.read_csv(path)


def summary(results):
    """Test and validation accuracy per recipe over its seeds: mean, standard deviation (n - 1),
    min, max, in percent, and the mean time; recipes in RECIPES order."""
    percent = results.assign(test=100 * results['test_acc'], val=100 * results['val_acc'])
    table = percent.groupby('recipe').agg(
        seeds=('seed', 'count'), test_mean=('test', 'mean'), test_std=('test', 'std'), test_min=('test', 'min'),
        test_max=('test', 'max'), val_mean=('val', 'mean'), val_std=('val', 'std'), seconds=('seconds', 'mean'))
    order = [r for r in RECIPES if r in table.index] + [r for r in table.index if r not in RECIPES]
    return table.loc[order]


def compare(results, a, b, what=''):
    """One sentence comparing recipes a and b from the rows: means +- standard deviations, the
    difference of the means, and in how many of the pairs (a run of a, a run of b) a scored higher."""
    test = {r: 100 * results.loc[results['recipe'] == r, 'test_acc'] for r in (a, b)}
    pairs = [(x > y) - (x < y) for x in test[a].round(6) for y in test[b].round(6)]
    if pairs.count(1) == len(pairs):
        spread = f'every {a} run above every {b} run'
    else:
        spread = (f'{a} above {b} in {pairs.count(1)} of the {len(pairs)} pairs of runs'
                  + (f', tied in {pairs.count(0)}' if pairs.count(0) else ''))
    return (f'{what + ": " if what else ""}{a} {test[a].mean():.2f} \u00b1 {test[a].std():.2f}% vs '
            f'{b} {test[b].mean():.2f} \u00b1 {test[b].std():.2f}% ({len(test[a])} and {len(test[b])} seeds): '
            f'{test[a].mean() - test[b].mean():+.2f} points; {spread}')

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--recipes', nargs='+', choices=tuple(RECIPES), default=tuple(RECIPES))
    parser.add_argument('--seeds', nargs='+', type=int, default=SEEDS)
    parser.add_argument('--out', default=str(CACHE), help=f'the CSV to write (default: {CACHE.relative_to(ROOT)})')
    parser.add_argument('--data-dir', default=str(DATA_DIR), help='folder holding MNIST/raw/ (default: data/ in the repo)')
    args = parser.parse_args(argv)
    results = run_all(args.recipes, args.seeds, args.out, args.data_dir)
    print(summary(results).round(3).to_string())
    return 0


if __name__ == '__main__':
    sys.exit(main())
