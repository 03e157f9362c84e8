"""The numbers in README.md and docs/*.md against the files and commands they come from, the README's
examples, and every relative link. Rewording a sentence never fails these tests; a number that no longer
matches its source does, with the page, the stated value and the measured one.

Fast: the shipped checkpoints, their histories and training_plots/experiments.csv. Slow: re-measuring
what `evaluate.py --drawn`, `--calibration` and `--numbers` print."""
import contextlib
import dataclasses
import functools
import io
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

import checkpoint
import evaluate
import experiments
import predict
import train
from files import ROOT, SHIPPED_DIR

README = ROOT / 'README.md'
DOCS = ROOT / 'docs'
PAGES = [README, *sorted(DOCS.glob('*.md')), ROOT / 'drawn_digits' / 'README.md']
# a run's own options: where it ran and saved, not its recipe
NOT_RECIPE = {'data_dir', 'checkpoint_dir', 'device', 'progress', 'dry_run', 'resume'}


# ---------------------------------------------------------------- reading the pages

def tables(path):
    """Every Markdown table of a page: a list of (header cells, [row as {header: cell}])."""
    found, block = [], []
    for line in path.read_text().splitlines() + ['']:
        if line.startswith('|'):
            block.append([cell.strip() for cell in line.strip().strip('|').split('|')])
        elif block:
            header, _, *rows = block
            found.append((header, [dict(zip(header, row)) for row in rows]))
            block = []
    return found


def table(path, *columns):
    """The rows of the one table of `path` whose header starts with `columns`."""
    matches = [rows for header, rows in tables(path) if tuple(header[:len(columns)]) == columns]
    assert len(matches) == 1, f'{path.name}: expected one table with the columns {columns}, found {len(matches)}'
    return matches[0]


def percents(cell):
    """The percentages in a table cell, as the strings written ('99.49', ...)."""
    return re.findall(r'(\d+\.\d+)%', cell)


def pct(fraction, digits=2):
    return f'{100 * fraction:.{digits}f}'


def checkpoint_in(cell):
    """The shipped checkpoint a table cell names (`cnn.pth` -> its loaded dict and stem)."""
    name = re.search(r'(\w+)\.pth', cell)[1]
    return name, checkpoint.load(SHIPPED_DIR / f'{name}.pth')


def shipped_rows():
    return table(README, 'model', 'MNIST test', 'drawn test half', 'training time', 'command')


def command_config(command):
    """The train.Config a `python train.py ...` command line runs."""
    words = shlex.split(command.strip('`'))
    assert words[:2] == ['python', 'train.py'], command
    return train.make_config(**train.parse_args(words[2:]))


# ---------------------------------------------------------------- README: the shipped models

def test_the_readme_table_lists_every_shipped_checkpoint():
    named = {checkpoint_in(row['model'])[0] for row in shipped_rows()}
    assert named == {path.stem for path in SHIPPED_DIR.glob('*.pth')}


def test_the_readme_names_the_default_model():
    """The row marked as the app's default is the shipped checkpoint load_model picks (the best by validation)."""
    default, = [checkpoint_in(row['model'])[0] for row in shipped_rows() if "the app's default" in row['model']]
    assert Path(checkpoint.find_best(SHIPPED_DIR)).stem == default


@pytest.mark.parametrize('row', shipped_rows(), ids=lambda row: checkpoint_in(row['model'])[0])
def test_the_readme_table_states_each_checkpoints_record(row):
    """MNIST test: the checkpoint's recorded test accuracy; training time: the sum of its history's epoch
    times, in minutes (then, for a fine-tuned model, its base run's, from NAME_base_history.csv); command: the
    recipe recorded in the checkpoint (the last command; a fine-tune starts from the first one's checkpoint)."""
    name, saved = checkpoint_in(row['model'])
    assert percents(row['MNIST test']) == [pct(saved['metrics']['test_acc'])], name
    history = pd.read_csv(SHIPPED_DIR / f'{name}_history.csv')
    assert history['test_acc'][saved['epoch'] - 1] == pytest.approx(saved['metrics']['test_acc'])  # the CSV is this run's
    recorded, *commands = saved['config'], *re.findall(r'`(python train\.py [^`]*)`', row['command'])
    base_csv = SHIPPED_DIR / f'{name}_base_history.csv'
    histories = [history] + ([pd.read_csv(base_csv)] if recorded.get('init_from') else [])
    minutes = [str(round(h['epoch_time'].sum() / 60)) for h in histories]
    assert re.findall(r'(\d+) min', row['training time']) == minutes, f'{name}: the histories say {minutes} min'
    assert len(commands) == len(histories), f'{name}: a fine-tuned model needs its base command first'
    config = command_config(commands[-1])
    if recorded.get('init_from'):  # the architecture is the base's: its command sets it
        base = command_config(commands[0])
        assert Path(recorded['init_from']).parent == Path(base.checkpoint_dir), name
        config = dataclasses.replace(config, **{f.name: getattr(base, f.name) for f in dataclasses.fields(base)
                                                if f.name == 'model' or f.metadata.get('model_option')})
    differ = {key: (getattr(config, key), value) for key, value in recorded.items()
              if key not in NOT_RECIPE and hasattr(config, key) and getattr(config, key) != value}
    assert not differ, f'{name}: the command gives (command, checkpoint) {differ}'


PRESET_NUMBERS = {'epochs': r'(\d+) epochs', 'batch_size': r'batch (\d+)', 'lr': r'(?:to|at) (\d[\d.e-]*)',
                  'label_smoothing': r'label smoothing ([\d.]+)', 'weight_decay': r'weight decay ([\d.e-]+\d)',
                  'dropout': r'dropout ([\d.]+)'}


def test_the_readme_presets_state_train_presets():
    """Each preset's numbers as train.PRESETS (through train.make_config) sets them; (none): the defaults."""
    rows = table(README, 'preset', 'model', 'what it sets')
    assert {row['preset'].strip('`') for row in rows} == {'(none)', *train.PRESETS}
    for row in rows:
        preset = row['preset'].strip('`')
        config = train.make_config(**({} if preset == '(none)' else {'preset': preset}))
        assert row['model'] == f'`{config.model}`', preset
        for name, pattern in PRESET_NUMBERS.items():
            stated = re.search(pattern, row['what it sets'])
            if 'no dropout' in row['what it sets'] and name == 'dropout':
                assert config.dropout == 0, preset
            elif stated:
                assert float(stated[1]) == getattr(config, name), (preset, name, stated[1])


# ---------------------------------------------------------------- docs/results.md: experiments.csv

def test_results_state_every_run_of_the_experiments_csv():
    """One row per run of training_plots/experiments.csv, with its command (every seed), best epoch,
    validation and test accuracy and wall time."""
    runs = experiments.load()
    rows = {row['command'].strip('`'): row for row in table(DOCS / 'results.md', 'recipe', 'seed', 'command')}
    assert set(rows) == set(runs['command']), 'docs/results.md and experiments.csv list different runs'
    for run in runs.itertuples():
        row = rows[run.command]
        stated = (row['recipe'].strip('`'), row['seed'], row['best epoch'], percents(row['validation']),
                  percents(row['MNIST test']), row['wall time'])
        assert stated == (run.recipe, str(run.seed), f'{run.best_epoch} of {run.epochs}', [pct(run.val_acc)],
                          [pct(run.test_acc)], f'{run.seconds:.0f} s'), run.command


def test_results_state_each_recipe_as_the_csv_summarises_it():
    summary = experiments.summary(experiments.load())
    assert set(summary.index) >= set(experiments.RECIPES) and (summary['seeds'] >= 3).all(), summary['seeds']
    rows = {row['recipe'].strip('`'): row for row in table(DOCS / 'results.md', 'recipe', 'what it is', 'seeds')}
    assert set(rows) == set(summary.index)
    for recipe, s in summary.iterrows():
        row = rows[recipe]
        assert row['seeds'] == str(int(s['seeds'])), recipe
        assert re.findall(r'(\d+\.\d\d) ± (\d+\.\d\d)%', row['MNIST test, mean ± std']) == \
            [(f'{s["test_mean"]:.2f}', f'{s["test_std"]:.2f}')], recipe
        assert percents(row['validation, mean']) == [f'{s["val_mean"]:.2f}'], recipe


def test_results_compare_recipes_as_experiments_compare_does():
    text = ' '.join((DOCS / 'results.md').read_text().split())
    pairs = re.findall(r'\(`([\w-]+)` against `([\w-]+)`\): ([^.]+\.\d+[^.]*)\.', text)
    assert len(pairs) >= 3, 'docs/results.md compares no recipes'
    runs = experiments.load()
    for a, b, stated in pairs:
        measured = experiments.compare(runs, a, b).split('seeds): ', 1)[1]
        assert stated == measured, (a, b)


# ---------------------------------------------------------------- docs/drawings.md: the checkpoints

def test_drawings_state_the_recorded_temperatures_and_validation():
    for row in table(DOCS / 'drawings.md', 'model', 'T'):
        name, saved = checkpoint_in(row['model'])
        assert row['T'] == f'{checkpoint.calibration(saved)[0]:.3f}', name
    text = (DOCS / 'drawings.md').read_text()
    for accuracy, name in re.findall(r'validation (\d+\.\d\d)%, recorded in\s+`(\w+)\.pth`', text):
        assert accuracy == pct(checkpoint.load(SHIPPED_DIR / f'{name}.pth')['metrics']['val_acc']), name


# ---------------------------------------------------------------- re-measured: what evaluate.py prints

@functools.cache
def printed(*args):
    """What `python evaluate.py ARGS` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert evaluate.main(list(args)) == 0
    return out.getvalue()


def checkpoint_args(name):
    return ('--checkpoint', str(SHIPPED_DIR / f'{name}.pth'))


def drawn_half(name, half):
    """Accuracy, ECE after and before T, verdict shares and sure-right share `--drawn` prints for a half."""
    out = printed('--drawn', *checkpoint_args(name))
    block = out[out.index(f'\n{half} (writers'):]
    return {'accuracy': re.search(r': (\d+\.\d\d)% of', block)[1],
            'ece': re.search(r'ECE \(15 bins\) (\d+\.\d\d)% at T = [\d.]+ \((\d+\.\d\d)% at T = 1\)', block).groups(),
            'shown': re.search(r'shown as: sure (\d+\.\d)%, unsure (\d+\.\d)%, not a digit (\d+\.\d)%', block).groups(),
            'sure right': re.search(r'the sure ones (\d+\.\d\d)% right', block)[1]}


@pytest.mark.slow
@pytest.mark.parametrize('row', shipped_rows(), ids=lambda row: checkpoint_in(row['model'])[0])
def test_the_readme_drawn_test_half_is_what_evaluate_prints(row):
    name = checkpoint_in(row['model'])[0]
    assert percents(row['drawn test half']) == [drawn_half(name, 'test')['accuracy']], name


@pytest.mark.slow
def test_drawings_state_what_evaluate_drawn_prints():
    page = DOCS / 'drawings.md'
    for row in table(page, 'model', 'drawn dev half'):
        name = checkpoint_in(row['model'])[0]
        dev = drawn_half(name, 'dev')
        assert percents(row['drawn dev half']) == [dev['accuracy']], name
        assert tuple(percents(row['shown as sure / unsure / not a digit (dev)'])) == dev['shown'], name
        assert percents(row['sure dev digits right']) == [dev['sure right']], name
    for row in table(page, 'model', 'T'):
        name = checkpoint_in(row['model'])[0]
        for half in ('dev', 'test'):
            after, before = drawn_half(name, half)['ece']
            assert percents(row[f'drawn {half}']) == [before, after], (name, half)
    for row in table(page, 'model', 'scribbles'):
        out = printed('--drawn', *checkpoint_args(checkpoint_in(row['model'])[0]))
        for kind, column in (('scribble', 'scribbles'), ('random strokes', 'random strokes'), ('pair', 'pairs')):
            assert percents(row[column]) == [re.search(rf'  {kind}: confident digit (\d+\.\d)%', out)[1]], (row, kind)
    unfinished = re.search(r'a sure wrong digit (\d+\.\d)%', printed('--drawn', *checkpoint_args('cnn')))[1]
    assert re.search(r'sure \*wrong\* digit (\d+\.\d)%', page.read_text())[1] == unfinished


@pytest.mark.slow
def test_evaluate_commands_in_tables_print_what_the_table_states():
    """A table row whose first cell is a `python evaluate.py --drawn ...` command: its drawn dev and test
    accuracy are what that command prints."""
    rows = [row for page in PAGES for header, rows in tables(page) if header[0] == 'command' for row in rows
            if row['command'].startswith('`python evaluate.py --drawn')]
    assert rows, 'no table of evaluate.py commands'
    for row in rows:
        out = printed(*shlex.split(row['command'].strip('`'))[2:])
        for half in ('dev', 'test'):
            measured = re.search(rf'\n{half} \(writers [^)]*\): (\d+\.\d\d)%', out)[1]
            assert percents(row[f'drawn {half}']) == [measured], (row['command'], half)


@pytest.mark.slow
def test_drawings_state_what_evaluate_calibration_prints(mnist):
    """MNIST test, re-measured: the accuracy each checkpoint records, the ECE before and after T, and how
    the test digits are shown."""
    page = DOCS / 'drawings.md'
    verdicts = {checkpoint_in(row['model'])[0]: row for row in table(page, 'model', 'sure', 'unsure', 'not a digit')}
    for row in table(page, 'model', 'T'):
        name, saved = checkpoint_in(row['model'])
        out = printed('--calibration', *checkpoint_args(name))
        assert re.search(r'accuracy (\d+\.\d\d)%', out)[1] == pct(saved['metrics']['test_acc']), name
        before, after = (re.search(rf'{when} \(T = [^)]*\): ECE \(15 bins\) (\d+\.\d\d)%', out)[1]
                         for when in ('before', 'after'))
        assert percents(row['MNIST test']) == [before, after], name
        shown = re.search(r'shown as: sure (\d+\.\d\d)%, unsure (\d+\.\d\d)%, not a digit (\d+\.\d\d)%', out).groups()
        stated = verdicts[name]
        assert (*percents(stated['sure']), *percents(stated['unsure']), *percents(stated['not a digit'])) == shown, name


def block_of(half, *options):
    """What `--numbers` (with `options`) prints for one half (and after it)."""
    out = printed('--numbers', *options)
    return out[out.index(f'\n{half} (writers'):]


def numbers_read(half, pipeline, *options):
    """Digit count, exact, one by one, shown sure, sure right and mean confidence that `--numbers` prints."""
    block = block_of(half, *options)
    return re.search(rf'\n  {pipeline} \([^)]*\): digit count (\d+\.\d)%, exact (\d+\.\d)% \(the digits one by '
                     rf'one: (\d+\.\d)%\); shown sure (\d+\.\d)%, of which (\d+\.\d)% right; mean confidence '
                     rf'(\d+\.\d)%', block).groups()


@pytest.mark.slow
def test_numbers_state_what_evaluate_numbers_prints():
    """docs/numbers.md's table and sentences and the README's paragraph on numbers, against `--numbers`
    (its timings are not compared: they vary from run to run)."""
    page = (DOCS / 'numbers.md').read_text()
    for row in table(DOCS / 'numbers.md', 'half', 'read through'):
        measured = numbers_read(row['half'].split()[0], {'picture': 'image'}.get(row['read through'], 'strokes'))
        stated = [*percents(row['digit count right']), *percents(row['whole number right']),
                  *percents(row['digits one by one'])]
        assert stated == list(measured[:3]), (row, measured)
    strokes, image = numbers_read('test', 'strokes'), numbers_read('test', 'image')
    sure = re.search(r'\((\d+\.\d)% of the (\d+\.\d)% of test numbers shown sure, through strokes; (\d+\.\d)% of '
                     r'(\d+\.\d)%, through a picture\)'.replace(' ', r'\s+'), page).groups()   # wrapped anywhere
    assert sure == (strokes[4], strokes[3], image[4], image[3])
    assert re.search(r'a mean of (\d+)% against (\d+)% right'.replace(' ', r'\s+'), page).groups() == \
        (f'{float(image[5]):.0f}', f'{float(image[1]):.0f}')
    apart, touch = (re.search(rf'\n  image (?s:.*?)\n    {name} \((\d+) numbers\): digit count \d+\.\d%, exact '
                              rf'(\d+\.\d)% \(the digits one by one: (\d+\.\d)%\)', block_of('test')).groups()
                    for name in ('no digits touch', 'some digits touch'))
    stated = re.search(r'digits all stand apart, a picture is read exactly in (\d+\.\d)%, where their digits one by '
                       r'one give (\d+\.\d)%; of the (\d+) in which some touch, in (\d+\.\d)%, where one by one '
                       r'gives (\d+\.\d)%'.replace(' ', r'\s+'), page).groups()   # wrapped anywhere
    assert stated == (apart[1], apart[2], touch[0], touch[1], touch[2])
    paragraph = README.read_text().split('Written numbers are read whole')[1].split('\n\n')[0]
    assert percents(paragraph) == [strokes[0], strokes[1], strokes[2], image[1]]
    fine = page.split('A number written with a fine pen')[1].split('\n\n')[0]
    brush = re.search(r'`python evaluate.py --numbers --pipeline image --brush (\d+)`', fine)[1]
    exact, alone, sure, sure_right = (numbers_read('test', 'image', '--pipeline', 'image', '--brush', brush)[i]
                                      for i in (1, 2, 3, 4))
    assert percents(fine) == [f'{100 * int(brush) / evaluate.NUMBER_HEIGHT:.1f}', exact, alone, sure, sure_right]


# ---------------------------------------------------------------- examples, links, files

def python_blocks(path):
    return re.findall(r'```python\n(.*?)```', path.read_text(), re.S)


@pytest.mark.parametrize('path', [README, DOCS / 'app.md', DOCS / 'numbers.md'], ids=lambda path: path.name)
def test_python_examples_run(path, monkeypatch):
    blocks = python_blocks(path)
    assert blocks, f'{path.name} has no python example'
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks:
            exec(code, {'__name__': '__docs__'})
    printed_ = out.getvalue()
    if path == README:  # the library in ten lines
        assert '(first_layer): Linear(in_features=784, out_features=256' in printed_, printed_
    elif path.name == 'numbers.md':  # a 1 and a 2, as the comment beside the print says
        said = re.search(r'reading\.verdict\)\s+# (.+)$', '\n'.join(blocks), re.M)[1]
        assert said.startswith('12 ') and printed_.startswith(f'{said}\n[[0], [1]] '), printed_
    else:  # docs/sample_digit.png is a 3
        assert re.search(r'^3 \([<>]?\d+\.\d%, sure\)$', printed_, re.M), printed_


def test_the_predict_command_prints_what_docs_app_says(monkeypatch):
    args, stated = re.search(r'```bash\npython predict\.py ([^\n#]+?)\s*\n```\s+prints `([^`]+)`',
                             (DOCS / 'app.md').read_text()).groups()
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert predict.main(shlex.split(args)) == 0
    assert out.getvalue().strip() == stated


def slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


@pytest.mark.parametrize('page', PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_and_heading(page):
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue
        path, _, anchor = target.partition('#')
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f'{page.name}: {target} does not exist'
        if anchor and linked.suffix == '.md':
            headings = re.findall(r'^#+ (.+)$', linked.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f'{page.name}: {linked.name} has no heading #{anchor}'


def test_the_readme_lists_every_module_and_docs_page():
    readme = README.read_text()
    files = table(README, 'path', 'what it is')
    listed = {row['path'].strip('`') for row in files}
    modules = {path.name for path in ROOT.glob('*.py')} | {'train_model.ipynb'}
    assert modules <= listed, f'the README\'s file table misses {sorted(modules - listed)}'
    for page in DOCS.glob('*.md'):
        assert f'](docs/{page.name})' in readme, f'the README does not link docs/{page.name}'
