"""Train a from-scratch model on MNIST: importable functions (the notebook calls them) and a CLI.

    python train.py                      # 30 epochs, batch 64, Adam 1e-3 decaying on a cosine
    python train.py --preset original    # the original project's recipe: the same at a constant 1e-3
    python train.py --resume model_checkpoints/last.pth
    python train.py --preset cnn-best    # a named recipe (see PRESETS); flags given as well win
    python train.py --init-from model_checkpoints/shipped/mlp.pth --extra-data data/my_digits --epochs 3

Each epoch records a history row (CSV beside the checkpoints). When validation accuracy
improves, the model is saved as best_model_epoch_{E}_acc_{A:.4f}.pth (A in percent); every
epoch also refreshes last.pth, the point to resume from. All writes are atomic (checkpoint.py).
At the end the best checkpoint is calibrated: a temperature fitted on the validation split is stored in it.
Runs go to model_checkpoints/ (ignored by git); the shipped models in model_checkpoints/shipped/
are never touched.
"""
import argparse
import inspect
import math
import os
import platform
import shlex
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import files  # first, before the libraries that take seconds to load
if __name__ == '__main__':
    files.quiet_ctrl_c()

import pandas as pd
import torch
from tqdm.auto import tqdm

import checkpoint
import nn
from data import DataError, add_styles, augment, batches, joined_pairs, load_splits, non_digits
from files import DATA_DIR, DRAWN_FILE, RUNS_DIR
from metrics import calibration, evaluate, logits_of
from my_digits import load_drawings
from preprocess import normalize

HISTORY_FILE = 'training_history.csv'
NORM_EVERY = 10        # steps between gradient-norm samples
REPORT_EVERY = 50      # steps between progress-bar updates and divergence checks
DRY_RUN_BATCHES = 10   # a dry run trains one epoch of this many batches
SEED_STRIDE = 1_000_003  # a prime above any epoch count: (seed, epoch) pairs never share a seed
CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over the 10 digits
DIVERGED_LOSS = 10 * CHANCE_LOSS  # a mean training loss above this has diverged, not learned
JUDGE_AFTER = 100      # steps after which an epoch still at chance accuracy has failed
CHANCE_ACC = 0.2       # "at chance": 10% is guessing; a learning model passes 80% within 100 steps
SCHEDULES = ('constant', 'cosine', 'onecycle')
WARMUP = 0.25  # share of the steps one-cycle spends rising from lr/25 to lr
WARMUP_START = 1 / 25  # one-cycle's first rate, as a share of the peak
PRESETS = {  # the recipes behind the README's results; `--preset NAME` sets them
    'original': {'schedule': 'constant'},
    'mlp-best': {'model': 'Net', 'init': 'he', 'epochs': 40, 'batch_size': 512, 'lr': 6e-3, 'schedule': 'onecycle',
                 'augment': True, 'label_smoothing': 0.1, 'weight_decay': 1e-4},
    'cnn-best': {'model': 'CNN', 'init': 'he', 'epochs': 15, 'batch_size': 128, 'lr': 3e-3, 'schedule': 'onecycle',
                 'augment': True, 'label_smoothing': 0.1, 'weight_decay': 1e-4, 'dropout': 0.25},
}
PRESETS['cnn-fast'] = {**PRESETS['cnn-best'], 'channels': (16, 32), 'epochs': 10, 'dropout': 0.0}  # about 2 min on a CPU
EXTRA_SHARE = 0.1  # --extra-data's drawings, repeated, make up about this share of every epoch's images
OUTLIER_BANK = 5000  # images of each --non-digits and --pairs bank, made once per run (1-3 ms each); batches sample and distort them

positive = (lambda v: v >= 1, 'must be at least 1')
not_negative = (lambda v: v >= 0, 'must be 0 or more')
fraction = (lambda v: 0 <= v < 1, 'must be in [0, 1)')


@dataclass
class Config:
    """Every option of a run. metadata: help; choices; valid, a (test, what it requires) pair;
    model_option, passed to the models whose constructor takes it; resumable, an option a resumed run may
    change (every other one is the recipe, taken from the checkpoint); older_checkpoints, for an option added
    after checkpoints were first written: the value a checkpoint that lacks it was trained with (the project
    has no version numbers: an option added later declares this, and older checkpoints keep resuming);
    shown_default, the default as --help words it when the value alone does not say it."""
    epochs: int = field(default=30, metadata={'resumable': True, 'help': 'epochs to train', 'valid': positive})
    batch_size: int = field(default=64, metadata={'help': 'minibatch size', 'valid': positive})
    lr: float = field(default=1e-3, metadata={'help': 'Adam learning rate', 'valid': (lambda v: v > 0, 'must be positive')})
    seed: int = field(default=0, metadata={'help': 'seed for initialisation, shuffling and everything random',
                                           'valid': not_negative})
    device: str = field(default='auto', metadata={
        'help': "'auto' (cuda, else mps, else cpu), 'cpu', 'cuda', 'cuda:1', ...", 'resumable': True})
    init: str = field(default=None, metadata={'help': 'weight initialisation', 'choices': nn.INITS,
                                              'shown_default': "the model's own: xavier for Net, as the original; "
                                                               'he for CNN', 'model_option': True})
    model: str = field(default='Net', metadata={'help': 'architecture: Net (the 784-256-128-10 MLP) or CNN',
                                                'choices': tuple(nn.MODELS)})
    dropout: float = field(default=0.0, metadata={'help': "dropout probability before the CNN's output layer",
                                                  'valid': fraction, 'model_option': True})
    channels: tuple = field(default=(32, 64), metadata={'older_checkpoints': (32, 64),
        'help': "the CNN's feature maps in its two convolution blocks; 16,32 takes about 2.5x less time per step",
        'valid': (lambda v: len(v) == 2 and all(type(c) is int and c >= 1 for c in v),
                  'must be two whole numbers of at least 1, e.g. 16,32'),
        'parse': lambda text: tuple(int(c) if c.strip().isdigit() else c for c in text.split(',')),
        'metavar': 'C1,C2', 'model_option': True})
    hidden: int = field(default=128, metadata={'help': "units in the CNN's hidden layer", 'valid': positive,
                                               'model_option': True, 'older_checkpoints': 128})
    schedule: str = field(default='cosine', metadata={'help': 'learning-rate schedule over all steps (set per step; '
                                                      "the lr is the peak; the original's was constant)",
                                                      'choices': SCHEDULES})
    augment: bool = field(default=False, metadata={'help': 'random shifts (2 px), rotations (10 deg) and zooms (10%%) '
                                                    'of every training batch'})
    styles: float = field(default=0.0, metadata={'older_checkpoints': 0.0,
                                                 'help': 'share of the training 0s, 1s, 4s and 7s drawn in styles MNIST '
                                                 'hardly has (slashed 0, flagged 1, open 4, crossed 7; data.add_styles)',
                                                 'valid': (lambda v: 0 <= v <= 1, 'must be in [0, 1]')})
    label_smoothing: float = field(default=0.0, metadata={'help': 'mix this much of the uniform distribution '
                                                          'into the targets', 'valid': fraction})
    weight_decay: float = field(default=0.0, metadata={'help': 'decoupled weight decay (AdamW)', 'valid': not_negative})
    non_digits: float = field(default=0.0, metadata={'older_checkpoints': 0.0,
        'help': 'outlier exposure: add this many synthetic non-digits (scribbles, strokes, hatching; data.non_digits) '
                'per digit to every training batch, trained towards the uniform distribution, so that a scribble '
                'is not shown as a confident digit', 'valid': fraction})
    pairs: float = field(default=0.0, metadata={'older_checkpoints': 0.0,
        'help': 'outlier exposure as --non-digits, with two training digits written touching or overlapping '
                '(data.joined_pairs): so that two digits of a number are not read as one', 'valid': fraction})
    preset: str = field(default=None, metadata={'help': 'a named recipe (flags given as well override it): '
                                                + ', '.join(f'{k} {v}' for k, v in PRESETS.items() if v),
                                                'choices': tuple(PRESETS)})
    data_dir: str = field(default=str(DATA_DIR), metadata={'resumable': True, 'help': 'folder holding MNIST/raw/'})
    checkpoint_dir: str = field(default=str(RUNS_DIR), metadata={'resumable': True,
        'help': 'where checkpoints and the history CSV go (the app and predict.py look there)'})
    val_size: int = field(default=5000, metadata={'help': 'training images held out for model selection',
                                                  'valid': not_negative})
    select_on: str = field(default='val', metadata={
        'help': "split that picks the best checkpoint (test: as the original did; last: the final epoch's weights, "
                'named by their validation accuracy, for a fine-tune whose aim validation does not measure)',
        'choices': ('val', 'test', 'last')})
    train_subset: int = field(default=0, metadata={'help': 'train on only this many images (0: all)', 'valid': not_negative})
    resume: str = field(default=None, metadata={'help': 'checkpoint to continue from, e.g. model_checkpoints/last.pth',
                                                'resumable': True})
    init_from: str = field(default=None, metadata={'older_checkpoints': None,
        'help': "start a NEW run from this checkpoint's weights and architecture, e.g. to fine-tune a shipped "
                'model: fresh optimizer, epochs, schedule and history, and the options given here (unlike '
                '--resume, which continues a run where it stopped, with its recipe)'})
    extra_data: str = field(default=None, metadata={'older_checkpoints': None,
        'help': "a folder of your own drawings (labels.jsonl, as the app's \"Wrong? It was...\" saves them in "
                f'data/my_digits) mixed into training, each repeated so that together they make about '
                f'{EXTRA_SHARE:.0%}% of every epoch; validation and test stay MNIST\'s'})
    dry_run: bool = field(default=False, metadata={'help': 'one epoch of a few batches, nothing saved: checks the set-up',
                                                   'resumable': True})
    progress: bool = field(default=True, metadata={'resumable': True, 'help': 'show progress bars'})

    def __post_init__(self):  # paths as plain strings, so checkpoints load with weights_only=True
        self.data_dir, self.checkpoint_dir = str(self.data_dir), str(self.checkpoint_dir)
        self.channels = tuple(self.channels) if isinstance(self.channels, (list, tuple)) else self.channels
        self.resume = str(self.resume) if self.resume else None
        self.init_from = str(self.init_from) if self.init_from else None
        self.extra_data = str(self.extra_data) if self.extra_data else None


class TrainingError(Exception):
    """Training cannot go on; the message says why and what to do."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during training. resume_from: the checkpoint to continue from, None if
    there is none yet."""

    def __init__(self, resume_from):
        super().__init__(resume_from)
        self.resume_from = resume_from


def flag(name):
    return '--' + name.replace('_', '-')


def resumable(name):
    """Whether a resumed run may change option `name` (its Config field says so)."""
    return Config.__dataclass_fields__[name].metadata.get('resumable', False)


def make_config(**options):
    """A Config from keyword options; `preset=NAME` fills in that recipe first."""
    preset = options.get('preset')
    if preset is not None and preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    return Config(**{**PRESETS.get(preset, {}), **options})


def check_config(config):
    """Every option checked once, here: its type, its choices, its range; each problem names its flag."""
    problems = []
    for f in fields(Config):
        value, choices, valid = getattr(config, f.name), f.metadata.get('choices'), f.metadata.get('valid')
        if value is None or f.type is str and not choices:
            continue
        if f.type is tuple and isinstance(value, tuple):
            if not valid[0](value):
                problems.append(f'{flag(f.name)} {shown(value)}: {valid[1]}')
            continue
        if f.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (math.isfinite(value) and (not valid or valid[0](value))):
                problems.append(f'{flag(f.name)} {value}: {valid[1] + " and finite" if valid else "must be finite"}')
        elif choices and value not in choices:
            problems.append(f'{flag(f.name)} {value}: choose one of {", ".join(map(str, choices))}')
        elif not isinstance(value, f.type) or isinstance(value, bool) != (f.type is bool):
            problems.append(f'{flag(f.name)} {value!r}: must be {"a whole number" if f.type is int else f.type.__name__}')
        elif valid and not valid[0](value):
            problems.append(f'{flag(f.name)} {value}: {valid[1]}')
    if config.model in nn.MODELS:
        accepted = inspect.signature(nn.MODELS[config.model]).parameters
        for f in fields(Config):
            if f.metadata.get('model_option') and f.name not in accepted and getattr(config, f.name) != f.default:
                takers = [name for name, model in nn.MODELS.items() if f.name in inspect.signature(model).parameters]
                problems.append(f'{config.model} takes no {flag(f.name)}: use --model {" or ".join(takers)} '
                                f'or {flag(f.name)} {shown(f.default)}')
    if config.select_on in ('val', 'last') and config.val_size == 0:
        problems.append('--val-size 0 leaves nothing to select on: use --select-on test')
    if problems:
        raise ValueError('; '.join(problems))


def shown(value):
    """An option's value as it is typed on the command line (a tuple as 16,32)."""
    return ','.join(map(str, value)) if isinstance(value, tuple) else value


def model_options(config):
    """The options config.model's constructor takes (nn's models are the one source of them); an option left
    at None (init) is the constructor's own default."""
    accepted = inspect.signature(nn.MODELS[config.model]).parameters
    return {f.name: getattr(config, f.name) for f in fields(Config) if f.metadata.get('model_option')
            and f.name in accepted and getattr(config, f.name) is not None}


def resolve_device(name):
    """The torch device for --device; an unknown or absent device is a TrainingError saying what exists."""
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    present = ['cpu'] + [f'cuda:{i}' for i in range(torch.cuda.device_count())]
    present += ['mps'] if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available() else []
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    usable = device is not None and (device.type == 'cpu' or device.type == 'mps' and 'mps' in present
                                     or device.type == 'cuda' and (device.index or 0) < torch.cuda.device_count())
    if not usable:
        raise TrainingError(f'--device {name}: ' + ('no such device here' if device else 'not a device name')
                            + f'; this machine has {", ".join(present)}: use --device auto or --device cpu')
    return device


def machine(device):
    """The CPU model and torch's thread count, and the GPU on CUDA: timings only compare on one machine."""
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    gpu = f', {torch.cuda.get_device_name(device)}' if device.type == 'cuda' else ''
    return f'{cpu}, {threads} thread{"s" * (threads > 1)}{gpu}'


def learning_rate(schedule, peak, step, total_steps):
    """The learning rate at a global step (0-based) of total_steps: constant; cosine decay from
    peak to 0; or one-cycle, a linear rise from peak * WARMUP_START over the first WARMUP of the
    steps, then cosine decay to 0. A function of the step alone, so a resumed run gets the same rates."""
    if schedule == 'constant':
        return peak
    start = round(WARMUP * total_steps) if schedule == 'onecycle' else 0
    if step < start:
        low = peak * WARMUP_START
        return low + (peak - low) * step / start
    return peak * 0.5 * (1 + math.cos(math.pi * (step - start) / (total_steps - start)))


def epoch_seed(seed, epoch):
    """Each epoch reseeds torch from (seed, epoch), so a resumed run draws what an
    uninterrupted one would have drawn."""
    return seed * SEED_STRIDE + epoch


def best_checkpoint_name(epoch, accuracy):
    return f'best_model_epoch_{epoch}_acc_{100 * accuracy:.4f}.pth'


# ---------------------------------------------------------------- one epoch

@dataclass
class Run:
    """What a run carries from epoch to epoch."""
    config: Config
    model: object
    optimizer: nn.Adam
    steps_per_epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {'epoch': 0, 'accuracy': -1.0, 'path': None})  # path absolute
    start_epoch: int = 1
    written_best: Path = None  # the best file this process wrote in this run's folder: the only one it may delete
    resume_from: str = None    # the latest checkpoint to continue from
    outliers: list = field(default_factory=list)  # (bank, share) pairs: --non-digits and --pairs images batches draw from

    def __post_init__(self):
        self.criterion = nn.CrossEntropyLoss(self.config.label_smoothing)

    def lr_at(self, step):
        return learning_rate(self.config.schedule, self.config.lr, step, self.config.epochs * self.steps_per_epoch)


def train_epoch(run, images, labels, epoch=1):
    """One pass over shuffled minibatches (each made by `training_batch`), with the rate of every step from
    run.lr_at. Returns mean loss, accuracy and the mean L2 norm of each weight's gradient, sampled every
    NORM_EVERY steps (every step would cost ~5% of the epoch). A loss that is not finite, or far above
    chance's, stops training with a TrainingError."""
    model, optimizer, criterion, batch_size = run.model, run.optimizer, run.criterion, run.config.batch_size
    desc, first_step = f'epoch {epoch}/{run.config.epochs}', (epoch - 1) * run.steps_per_epoch
    weights = [(name, p) for name, p in model.named_parameters() if name.endswith('weight')]
    loss_sum = torch.zeros((), device=labels.device)
    correct = torch.zeros((), device=labels.device, dtype=torch.long)
    norm_sum = torch.zeros(len(weights), device=labels.device)
    steps = math.ceil(len(labels) / batch_size)
    bar = tqdm(total=steps, desc=desc, disable=not run.config.progress, leave=False, unit='batch')
    for step, (x, y) in enumerate(batches(images, labels, batch_size, shuffle=True), 1):
        optimizer.lr = run.lr_at(first_step + step - 1)
        x, targets = training_batch(run, x, y)
        logits = model.logits(x)
        loss = criterion(logits, targets)
        model.backward(criterion.backward(), input_grad=False)
        optimizer.step()
        loss_sum += loss * len(y)
        correct += (logits[:len(y)].argmax(1) == y).sum()
        if step % NORM_EVERY == 1:
            norm_sum += torch.stack([torch.linalg.vector_norm(p.grad) for _, p in weights])
        bar.update()
        if step % REPORT_EVERY == 0 or step == steps:
            seen = min(step * batch_size, len(labels))
            running_loss = loss_sum.item() / seen
            check_loss(running_loss, step, desc, run.config.lr, bar)
            bar.set_postfix(loss=f'{running_loss:.4f}', acc=f'{correct.item() / seen:.4f}')
    bar.close()
    n = len(labels)
    if steps >= JUDGE_AFTER and correct.item() / n < CHANCE_ACC:
        raise TrainingError(f'training failed: {correct.item() / n:.1%} accuracy after {steps} steps of {desc}, '
                            f'no better than guessing; lower the learning rate (--lr {run.config.lr:g}) '
                            f'or check the labels')
    samples = len(range(1, steps + 1, NORM_EVERY))
    grad_norms = {f'grad_norm_{name.removesuffix(".weight")}': v / samples
                  for (name, _), v in zip(weights, norm_sum.tolist())}
    return {'train_loss': loss_sum.item() / n, 'train_acc': correct.item() / n, **grad_norms}


def training_batch(run, x, y):
    """The images and targets one step trains on. With config.styles a share of some digits is redrawn in
    other styles (data.add_styles), then with config.augment the batch is distorted by data.augment (loss and
    accuracy are then those of the distorted images). For each bank of run.outliers (--non-digits, --pairs)
    the batch gets round(share * batch) of its images, distorted, with target -1 (the uniform distribution),
    after the digits."""
    if run.config.styles:
        x = add_styles(x, y, run.config.styles)
    if run.config.augment:
        x = augment(x)
    images, targets = [x], [y]
    for bank, share in run.outliers:
        picked = torch.randint(len(bank), (round(share * len(y)),), device=y.device)
        images.append(augment(bank.index_select(0, picked)))
        targets.append(y.new_full((len(picked),), -1))
    return torch.cat(images), torch.cat(targets)


def check_loss(loss, step, desc, lr, bar):
    if math.isfinite(loss) and loss <= DIVERGED_LOSS:
        return
    bar.close()
    if not math.isfinite(loss):
        raise TrainingError(f'the training loss became {loss} at step {step} of {desc}; '
                            f'lower the learning rate (--lr) or check the input data')
    raise TrainingError(f'training diverged: the mean loss is {loss:.3g} at step {step} of {desc}, far above '
                        f'chance ({CHANCE_LOSS:.2f}); lower the learning rate (--lr {lr:g})')


def epoch_row(run, splits, epoch):
    """Train one epoch and evaluate: the epoch's history row."""
    torch.manual_seed(epoch_seed(run.config.seed, epoch))
    tic = time.perf_counter()
    row = {'epoch': epoch, 'lr': run.lr_at((epoch - 1) * run.steps_per_epoch)}  # the rate of the epoch's first step
    row |= train_epoch(run, *splits['train'], epoch)
    for split in ('val', 'test'):
        result = evaluate(run.model, *splits[split]) if len(splits[split][1]) else None
        row |= {f'{split}_loss': result.loss if result else math.nan,
                f'{split}_acc': result.accuracy if result else math.nan}
    row['epoch_time'] = time.perf_counter() - tic
    run.history.append(row)
    return row


# ---------------------------------------------------------------- set-up, keeping the best, the loop

def configure(config, options):
    """The run's Config (options override `config`, or the defaults after a preset) and, when
    resuming, the loaded checkpoint, whose recipe the run then follows: only resumable options may
    differ, and a recipe option given that contradicts the checkpoint is an error naming it; without
    --epochs it runs for the epochs it was planned for."""
    given = {f.name: getattr(config, f.name) for f in fields(Config)
             if getattr(config, f.name) != f.default} if config else {}
    given |= options
    config = replace(config, **options) if config else make_config(**options)
    if config.init_from:
        config = initial(config, given)
    check_config(config)
    check_run_folder(config)
    if not config.resume or config.init_from:
        return config, None
    saved = checkpoint.load(config.resume)
    recorded = {f.name: f.metadata['older_checkpoints'] for f in fields(Config)
                if 'older_checkpoints' in f.metadata} | saved['config']
    missing = [f.name for f in fields(Config) if f.name not in recorded]
    if missing:
        raise TrainingError(f'{config.resume} records no {", ".join(missing)}: this version cannot resume it; '
                            f'start a new run')
    check_recipe(config, recorded)
    contradicted = [name for name, value in given.items() if not resumable(name) and value != recorded[name]]
    if contradicted:
        raise TrainingError(f'{config.resume} was trained with ' + ', '.join(f'{flag(n)} {recorded[n]}' for n in contradicted)
                            + ': resume without ' + ', '.join(flag(n) for n in contradicted) + ', or start a new run')
    config = replace(config, **{f.name: recorded[f.name] for f in fields(Config) if not resumable(f.name)})
    planned = recorded['epochs']
    if 'epochs' not in given:  # resumed as it was planned, not for the default's length
        config = replace(config, epochs=planned)
    if config.schedule != 'constant' and config.epochs != planned:
        raise TrainingError(f'{config.resume} follows a {config.schedule} learning-rate schedule planned for '
                            f'--epochs {planned}: resume it with --epochs {planned} (another length would change '
                            f'the rates it has already used), or start a new run to train longer')
    return config, saved


def check_recipe(config, recorded):
    """The recipe a checkpoint records, checked as the command line's options are (check_config): a file
    not written by train.py must not reach the training loop."""
    try:
        check_config(replace(config, **{f.name: recorded[f.name] for f in fields(Config)}))
    except (ValueError, TypeError) as e:
        raise TrainingError(f'{config.resume} records a recipe this version cannot use ({e}); it was not '
                            f'saved by train.py: start a new run') from None


def check_run_folder(config):
    """A run writes only in its own folder: never in the current folder by accident (an empty
    --checkpoint-dir), never among the shipped models."""
    if config.dry_run:
        return
    folder = Path(config.checkpoint_dir).resolve()
    shipped = files.SHIPPED_DIR.resolve()
    if not config.checkpoint_dir.strip():
        raise TrainingError("--checkpoint-dir '': name the folder for this run's checkpoints, "
                            'e.g. --checkpoint-dir model_checkpoints/my-run')
    if folder == shipped or shipped in folder.parents:
        raise TrainingError(f'--checkpoint-dir {config.checkpoint_dir}: the shipped models\' folder is not for '
                            f'training runs; pass another folder, e.g. {RUNS_DIR}')


def initial(config, given):
    """The Config of a new run that starts from config.init_from's weights: its architecture is the
    checkpoint's (an option given that contradicts it is an error naming it), and its validation images
    must be ones that checkpoint never trained on."""
    if config.resume:
        raise TrainingError('--init-from starts a new run from a checkpoint\'s weights, --resume continues a run '
                            'where it stopped: pass only one of them')
    saved = checkpoint.load(config.init_from)
    arch = saved['architecture']
    recorded = {'model': arch['name'], **{f.name: arch['config'][f.name] for f in fields(Config)
                                          if f.metadata.get('model_option') and f.name in arch['config']}}
    contradicted = [name for name in recorded if name in given and given[name] != recorded[name]]
    if contradicted:
        raise TrainingError(f'{config.init_from} is a ' + ', '.join(f'{flag(n)} {recorded[n]}' for n in recorded)
                            + ' model: its architecture is kept; drop ' + ', '.join(flag(n) for n in contradicted))
    trained_val = saved['config']['val_size']
    if config.val_size > trained_val:
        raise TrainingError(f'--val-size {config.val_size}: {config.init_from} held out only {trained_val} validation '
                            f'images and trained on the rest; use --val-size {trained_val} or less, so that '
                            f'validation stays unseen')
    return replace(config, **recorded)


def extra_training_data(config, train_images):
    """The drawings in config.extra_data as normalised training images, each repeated so that beside
    `train_images` MNIST images they make up about EXTRA_SHARE of the epoch (each at least once): a few
    dozen drawings would otherwise be lost among 55,000 MNIST digits. The drawn-digits benchmark is
    refused: it only evaluates."""
    folder = Path(config.extra_data)
    benchmark = DRAWN_FILE.parent.resolve()
    if folder.resolve() == benchmark or benchmark in folder.resolve().parents or (folder / DRAWN_FILE.name).exists():
        raise TrainingError(f'--extra-data {folder}: the drawn-digits benchmark is for evaluation only (a model '
                            f'trained on it would be measured on what it learnt); pass a folder of your own '
                            f'drawings, e.g. data/my_digits')
    images, labels = load_drawings(folder)
    repeats = max(1, round(EXTRA_SHARE / (1 - EXTRA_SHARE) * train_images / len(labels)))
    print(f'Mixing {len(labels)} drawings from {folder} into training, each {repeats} times: '
          f'{repeats * len(labels) / (train_images + repeats * len(labels)):.1%} of every epoch')
    return (normalize(torch.from_numpy(images)).repeat_interleave(repeats, 0),
            torch.from_numpy(labels).repeat_interleave(repeats, 0))


def prepare(splits, config, device):
    """The splits this run trains and evaluates on, on `device`."""
    train_split = splits['train']
    if config.train_subset:
        train_split = tuple(t[:config.train_subset] for t in train_split)
    if config.extra_data:
        extra = extra_training_data(config, len(train_split[1]))
        train_split = tuple(torch.cat([t, e.to(t.device)]) for t, e in zip(train_split, extra))
    if config.dry_run:
        train_split = tuple(t[:DRY_RUN_BATCHES * config.batch_size] for t in train_split)
    if config.val_size != len(splits['val'][1]):
        raise ValueError(f'the data given holds {len(splits["val"][1])} validation images, '
                         f'but --val-size is {config.val_size}')
    return {split: tuple(t.to(device) for t in pair) for split, pair in (splits | {'train': train_split}).items()}


def start(config, saved, device, train_images):
    """A new run, or the resumed one where its checkpoint stopped; `train_images` are the split's images."""
    torch.manual_seed(config.seed)
    model = nn.build_model(config.model, **model_options(config)).to(device)
    if config.init_from and not saved:  # a new run; `initial` took the architecture from the checkpoint
        try:
            model.load_state_dict(checkpoint.load(config.init_from, device)['model'])
        except ValueError as e:
            raise TrainingError(f'{config.init_from}: its weights do not fit {config.model} ({e}); '
                                f'it was saved by another version of the project') from None
        print(f'Starting a new run from the weights of {config.init_from}')
    run = Run(config, model, nn.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay),
              math.ceil(len(train_images) / config.batch_size))
    run.outliers = outlier_banks(config, train_images, device)
    if config.dry_run:
        run.start_epoch, config.epochs = 1, 1
    if saved:
        model.load_state_dict(saved['model'])
        try:
            run.optimizer.load_state_dict(saved['optimizer'])
        except (KeyError, ValueError, TypeError) as e:
            raise TrainingError(f'{config.resume}: its optimizer state does not fit ({type(e).__name__}: {e}); '
                                f'it cannot be resumed; start a new run') from None
        best = saved['best']
        path = best['path'] and Path(config.resume).parent / best['path']
        run.history, run.best, run.resume_from = saved['history'], {**best, 'path': path}, config.resume
        run.start_epoch = saved['epoch'] + 1
        print(f'Resuming from {config.resume} after epoch {saved["epoch"]}'
              + (f' of {config.epochs}: nothing left to train' if run.start_epoch > config.epochs else ''))
        if run.start_epoch <= config.epochs:
            adopt_best(run)
    return run


def outlier_banks(config, train_images, device):
    """The (bank, share) pairs of --non-digits and --pairs: the same banks for a run and its resumption,
    each from its own seeded generator."""
    makers = {'non_digits': ('synthetic non-digits', lambda generator: non_digits(OUTLIER_BANK, generator)),
              'pairs': ('pairs of training digits',
                        lambda generator: joined_pairs(train_images, OUTLIER_BANK, generator))}
    banks = []
    for name, (what, make) in makers.items():
        share = getattr(config, name)
        if share:
            tic = time.perf_counter()
            banks.append((make(torch.Generator().manual_seed(config.seed)).to(device), share))
            print(f'Made {OUTLIER_BANK:,} {what} in {time.perf_counter() - tic:.1f}s; each batch adds {share:g} '
                  f'of its size of them, with the uniform distribution as target')
    return banks


def adopt_best(run):
    """A run resumed into another folder copies its best checkpoint there (the copy is this run's file):
    its checkpoints then name files in their own folder only, and the original is never rewritten."""
    folder, path = Path(run.config.checkpoint_dir), run.best['path']
    if path is None or not path.is_file() or path.parent.resolve() == folder.resolve():
        return
    copy = folder / path.name
    if copy.exists():
        raise TrainingError(f'{copy} exists already and is not this run\'s best; pass another --checkpoint-dir')
    checkpoint.save(copy, checkpoint.load(path))
    run.best['path'] = run.written_best = copy


def selected_split(config):
    """The split whose accuracy names and (unless --select-on last) picks the best checkpoint."""
    return 'val' if config.select_on == 'last' else config.select_on


def better(run, row):
    """Whether the epoch is a new best: its accuracy above the best so far (any epoch, with --select-on
    last) and, in a run long enough to be judged (JUDGE_AFTER steps in all), above chance (CHANCE_ACC): a
    collapsed model is never kept as a best, which predict could then take as the default model."""
    accuracy = row[f'{selected_split(run.config)}_acc']
    judged = run.config.epochs * run.steps_per_epoch >= JUDGE_AFTER
    newer = accuracy > run.best['accuracy'] or run.config.select_on == 'last'
    return newer and not (judged and accuracy < CHANCE_ACC)


def keep(run, row, epoch, improved):
    """Save the epoch: a new best file when it improved (then delete the previous best, but only
    one this process wrote), last.pth, and the history CSV."""
    folder, accuracy = Path(run.config.checkpoint_dir), row[f'{selected_split(run.config)}_acc']
    if improved:
        path = folder / best_checkpoint_name(epoch, accuracy)
        run.best = {'epoch': epoch, 'accuracy': accuracy, 'path': path}
    saved = snapshot(run, epoch, row, folder)
    if improved:
        previous, existed = run.written_best, path.exists()
        save_resume_point(run, path, saved)
        run.written_best = None if existed else path  # a file that was there already is not this run's to delete
        if previous and previous != path:
            previous.unlink(missing_ok=True)  # only after the new best is safely on disk
    save_resume_point(run, folder / checkpoint.LAST, saved)
    files.atomic_write(folder / HISTORY_FILE, lambda f: pd.DataFrame(run.history).to_csv(f, index=False))


def save_resume_point(run, path, saved):
    """checkpoint.save, after which `path` is the point to resume from: also when a Ctrl-C or SIGTERM that
    waited for the write to finish (files.interrupts_deferred) takes effect the moment it has."""
    before = file_identity(path)
    try:
        checkpoint.save(path, saved)
    except KeyboardInterrupt:
        if file_identity(path) not in (None, before):  # the new file is in place
            run.resume_from = str(path)
        raise
    run.resume_from = str(path)


def file_identity(path):
    """(inode, modification time) of a file, None when there is none: it changes when a file is replaced."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def snapshot(run, epoch, row, folder):
    """The checkpoint of the run after `epoch` (its best path relative to `folder`)."""
    best_path = run.best['path'] and os.path.relpath(run.best['path'], folder)
    return checkpoint.build(run.model, run.optimizer, epoch, row, asdict(run.config), run.history,
                            {**run.best, 'path': best_path})


def train(config=None, data=None, callback=None, **options):
    """Train as `config` (a Config) and keyword `options` say (see Config; preset=NAME fills in a
    recipe). `data`: splits already loaded by data.load_splits with the same val_size (else they
    are loaded from config.data_dir). callback(epoch, row) runs after each epoch is saved.

    Returns a dict: history (DataFrame), best_checkpoint (Path; None in a dry run) and test
    (the Evaluation of the best checkpoint on the test set)."""
    config, saved = configure(config, options)
    device = resolve_device(config.device)
    with nullcontext() if config.dry_run else checkpoint.locked(config.checkpoint_dir):  # before data: fail fast
        splits = prepare(data if data is not None else load_splits(config.data_dir, config.val_size), config, device)
        run = start(config, saved, device, splits['train'][0])
        left = config.epochs - run.start_epoch + 1
        if left > 0:  # else start() said there is nothing left to train
            span = f'{config.epochs} epochs' if left == config.epochs else f'the last {left} of {config.epochs} epochs'
            print(f'Training {config.model} ({run.model.num_parameters():,} parameters) on {device} for {span}: '
                  + ' / '.join(f'{len(splits[s][1]):,} {s}' for s in splits) + ' images')
        start_time = time.perf_counter()
        try:
            for epoch in range(run.start_epoch, config.epochs + 1):
                row = epoch_row(run, splits, epoch)
                improved = better(run, row)
                print(f'epoch {epoch:3d}/{config.epochs}  loss {row["train_loss"]:.4f}  train {row["train_acc"]:.4f}  '
                      f'val {row["val_acc"]:.4f}  test {row["test_acc"]:.4f}  {row["epoch_time"]:.1f}s'
                      + ('  * best' if improved else ''), flush=True)
                if not config.dry_run:
                    keep(run, row, epoch, improved)
                if callback:
                    callback(epoch, row)
        except KeyboardInterrupt:
            raise Interrupted(run.resume_from) from None
        return finish(run, splits, time.perf_counter() - start_time)


def finish(run, splits, seconds):
    """The run's result: the best checkpoint evaluated on the test set (the final model in a dry
    run, or when the best a resumed run recorded has gone missing)."""
    history, best = pd.DataFrame(run.history), run.best
    if run.config.dry_run:
        print(f'Dry run finished in {seconds:.1f}s; nothing saved.')
        return {'history': history, 'best_checkpoint': None, 'test': evaluate(run.model, *splits['test'])}
    path = best['path']
    if path is None:
        split = selected_split(run.config)
        last = run.history[-1][f'{split}_acc'] if run.history else math.nan
        raise TrainingError(f'training failed: no epoch did better than guessing ({split} accuracy '
                            f'{last:.1%} in the last), so no best model was saved; lower the learning rate '
                            f'(--lr {run.config.lr:g}) or check the labels')
    missing = not path.is_file()
    if missing:
        path = Path(run.resume_from)
        print(f'note: the best checkpoint recorded, {best["path"]}, is missing; the final model ({path}) is evaluated instead')
    device = splits['test'][1].device
    saved = checkpoint.load(path, device)
    model = checkpoint.build_model(saved, device)
    if missing:  # a resume point is not calibrated: that is a best's
        temperature = checkpoint.calibration(saved)[0]
    else:
        path, temperature = calibrate(path, saved, model, splits['val'], Path(run.config.checkpoint_dir))
    test = evaluate(model, *splits['test'], temperature=temperature)
    print(f'Finished in {seconds:.1f}s. Best checkpoint: {path} (epoch {best["epoch"]}, '
          f'{selected_split(run.config)} accuracy {best["accuracy"]:.4f}); test accuracy {test.accuracy:.4f}')
    return {'history': history, 'best_checkpoint': path, 'test': test}


def calibrate(path, saved, model, val, folder):
    """Temperature scaling of the best checkpoint: metrics.calibration fitted on the validation split and
    stored in the file (checkpoint.py), so predict's probabilities mean what they say. A best already
    calibrated is left as it is; one outside the run's `folder` (the best of the run a resume started from)
    is calibrated as a copy in `folder`, never rewritten. Returns (the best checkpoint's path, T); T is 1.0,
    and the file untouched, without a validation split."""
    images, labels = val
    if 'calibration' in saved:
        return path, saved['calibration']['temperature']
    if not len(labels):
        print('note: no validation split (--val-size 0): the checkpoint is not calibrated (T = 1)')
        return path, 1.0
    if path.parent.resolve() != folder.resolve():
        path = folder / path.name
        if path.exists():
            raise TrainingError(f'{path} exists already and is not this run\'s best; pass another --checkpoint-dir')
    c = checkpoint.save_calibrated(path, saved, calibration(logits_of(model, images), labels))
    print(f'Calibrated on the validation split: temperature {c["temperature"]:.3g}, '
          f'NLL {c["nll_before"]:.4f} -> {c["nll_after"]:.4f}')
    return path, c['temperature']


# ---------------------------------------------------------------- command line

def parse_args(argv=None):
    """The options given on the command line (a dict: make_config fills in the rest)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], argument_default=argparse.SUPPRESS)
    for f in fields(Config):
        default = f.metadata.get('shown_default', shown(f.default))
        help, choices = f'{f.metadata["help"]} (default: {default})', f.metadata.get('choices')
        if f.type is bool:
            action = argparse.BooleanOptionalAction if f.default else 'store_true'
            parser.add_argument(flag(f.name), action=action, help=help)
        else:
            parser.add_argument(flag(f.name), type=f.metadata.get('parse', f.type), help=help,
                                metavar='{' + ','.join(choices) + '}' if choices else f.metadata.get('metavar'))
    return vars(parser.parse_args(argv))


def resume_command(config, resume_from):
    """The command that continues this run where it stopped."""
    command = f'python train.py --resume {shlex.quote(str(resume_from))}'
    for name in ('epochs', 'checkpoint_dir', 'data_dir'):
        if getattr(config, name) != getattr(Config, name):
            command += f' {flag(name)} {shlex.quote(str(getattr(config, name)))}'
    return command


def main(argv=None):
    options = parse_args(argv)
    terminated = []

    def on_sigterm(signum, frame):  # `kill` stops a run as Ctrl-C does: no temporary file left, a resume hint
        terminated.append(signum)
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        train(**options)
    except KeyboardInterrupt as e:
        resume_from = getattr(e, 'resume_from', options.get('resume'))  # Ctrl-C before training: as given
        print('\nInterrupted. ' + (f'Checkpoints already written are intact; continue with '
                                   f'`{resume_command(make_config(**options), resume_from)}`.' if resume_from
                                   else 'No checkpoint was saved yet: start again to train.'), file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    except (DataError, TrainingError, ValueError, FileNotFoundError, files.WriteError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == '__main__':
    sys.exit(main())
