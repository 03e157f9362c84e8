"""Train a from-scratch model on MNIST: importable functions (the notebook calls them) and a CLI.

    python train.py                      # 30 epochs, batch 64, Adam 1e-3 decaying on a cosine
    python train.py --preset original    # the original project's recipe: the same at a constant 1e-3
    python train.py --resume model_checkpoints/last.pth
    python train.py --preset cnn-best    # a named recipe (see PRESETS); flags given as well win

Each epoch records a history row (CSV beside the checkpoints). When validation accuracy
improves, the model is saved as best_model_epoch_{E}_acc_{A:.4f}.pth (A in percent); every
epoch also refreshes last.pth, the point to resume from. All writes are atomic.
"""
import argparse
import math
import os
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

import nn
from data import DataError, augment, batches, load_splits
from evaluate import evaluate

CHECKPOINT_PATTERN = re.compile(r'best_model_epoch_(\d+)_acc_([\d.]+)\.pth$')
LAST_CHECKPOINT = 'last.pth'
HISTORY_FILE = 'training_history.csv'
NORM_EVERY = 10  # steps between gradient-norm samples
RECIPE = ('batch_size', 'lr', 'seed', 'init', 'val_size', 'select_on', 'train_subset', 'model', 'dropout',
          'schedule', 'augment', 'label_smoothing', 'weight_decay', 'preset')
SCHEDULES = ('constant', 'cosine', 'onecycle')
WARMUP = 0.25  # share of the steps one-cycle spends rising from lr/25 to lr
PRESETS = {  # the recipes behind the README's results; `--preset NAME` sets them
    'original': {'schedule': 'constant'},
    'mlp-best': {'model': 'Net', 'init': 'he', 'epochs': 40, 'batch_size': 512, 'lr': 6e-3, 'schedule': 'onecycle',
                 'augment': True, 'label_smoothing': 0.1, 'weight_decay': 1e-4},
    'cnn-best': {'model': 'CNN', 'init': 'he', 'epochs': 15, 'batch_size': 128, 'lr': 3e-3, 'schedule': 'onecycle',
                 'augment': True, 'label_smoothing': 0.1, 'weight_decay': 1e-4, 'dropout': 0.25},
}


@dataclass
class Config:
    epochs: int = field(default=30, metadata={'help': 'epochs to train'})
    batch_size: int = field(default=64, metadata={'help': 'minibatch size'})
    lr: float = field(default=1e-3, metadata={'help': 'Adam learning rate'})
    seed: int = field(default=0, metadata={'help': 'seed for initialisation, shuffling and everything random'})
    device: str = field(default='auto', metadata={'help': "'auto' (cuda, else mps, else cpu), 'cpu', 'cuda', 'cuda:1', ..."})
    init: str = field(default='xavier', metadata={'help': 'weight initialisation', 'choices': nn.INITS})
    model: str = field(default='Net', metadata={'help': 'architecture: Net (the 784-256-128-10 MLP) or CNN',
                                                'choices': tuple(nn.MODELS)})
    dropout: float = field(default=0.0, metadata={'help': "dropout probability before the CNN's output layer"})
    schedule: str = field(default='cosine', metadata={'help': 'learning-rate schedule over all steps (set per step; '
                                                      "the lr is the peak; the original's was constant)",
                                                      'choices': SCHEDULES})
    augment: bool = field(default=False, metadata={'help': 'random shifts (2 px), rotations (10 deg) and zooms (10%%) '
                                                    'of every training batch'})
    label_smoothing: float = field(default=0.0, metadata={'help': 'mix this much of the uniform distribution '
                                                          'into the targets'})
    weight_decay: float = field(default=0.0, metadata={'help': 'decoupled weight decay (AdamW)'})
    preset: str = field(default=None, metadata={'help': 'a named recipe (flags given as well override it): '
                                                + ', '.join(f'{k} {v}' for k, v in PRESETS.items() if v),
                                                'choices': tuple(PRESETS)})
    data_dir: str = field(default='data', metadata={'help': 'folder holding MNIST/raw/'})
    checkpoint_dir: str = field(default='model_checkpoints', metadata={'help': 'where checkpoints and the history CSV go'})
    val_size: int = field(default=5000, metadata={'help': 'training images held out for model selection'})
    select_on: str = field(default='val', metadata={'help': 'split that picks the best checkpoint (test: as the original did)',
                                                    'choices': ('val', 'test')})
    train_subset: int = field(default=0, metadata={'help': 'train on only this many images (0: all)'})
    resume: str = field(default=None, metadata={'help': 'checkpoint to continue from, e.g. model_checkpoints/last.pth'})
    dry_run: bool = field(default=False, metadata={'help': 'one epoch of a few batches, nothing saved: checks the set-up'})
    progress: bool = field(default=True, metadata={'help': 'show progress bars'})

    def __post_init__(self):  # paths as plain strings, so checkpoints load with weights_only=True
        self.data_dir, self.checkpoint_dir = str(self.data_dir), str(self.checkpoint_dir)
        self.resume = str(self.resume) if self.resume else None


class TrainingError(Exception):
    """Training cannot go on; the message says why and what to do."""


def resolve_device(name):
    if name != 'auto':
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
        return torch.device('mps')
    return torch.device('cpu')


def make_config(**options):
    """A Config from keyword options; `preset=NAME` fills in that recipe first."""
    preset = options.get('preset')
    if preset is not None and preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    return Config(**{**PRESETS.get(preset, {}), **options})


def learning_rate(schedule, peak, step, total_steps):
    """The learning rate at a global step (0-based) of total_steps: constant; cosine decay from
    peak to 0; or one-cycle, a linear rise from peak/25 over the first WARMUP of the steps,
    then cosine decay to 0. A function of the step alone, so a resumed run gets the same rates."""
    if schedule == 'constant':
        return peak
    start = round(WARMUP * total_steps) if schedule == 'onecycle' else 0
    if step < start:
        return peak / 25 + (peak - peak / 25) * step / start
    return peak * 0.5 * (1 + math.cos(math.pi * (step - start) / (total_steps - start)))


def model_options(config):
    return {'init': config.init} | ({'dropout': config.dropout} if config.model == 'CNN' else {})


def epoch_seed(seed, epoch):
    """Each epoch reseeds torch from (seed, epoch), so a resumed run draws what an
    uninterrupted one would have drawn."""
    return seed * 1_000_003 + epoch


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path, checkpoint):
    """Write to a temporary file in the same folder, flush to disk, then rename: a crash or
    Ctrl-C leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')
    try:
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: leave no half-written temporary behind
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path, map_location='cpu'):
    """A checkpoint dict, loaded safely (weights_only) onto `map_location`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist; train one with `python train.py` '
                                f'or point to an existing .pth file')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f'checkpoint {path} cannot be read ({type(e).__name__}: {e}); '
                         f'it is corrupt or not a checkpoint of this project') from None
    if not isinstance(checkpoint, dict) or 'model' not in checkpoint or 'architecture' not in checkpoint:
        raise ValueError(f'checkpoint {path} is not a checkpoint of this project (no model state or architecture)')
    return checkpoint


def find_best_checkpoint(folder='model_checkpoints'):
    """The best_model_*.pth with the highest accuracy in its name (latest epoch on ties), or None."""
    candidates = []
    for path in Path(folder).glob('best_model_epoch_*_acc_*.pth'):
        match = CHECKPOINT_PATTERN.search(path.name)
        if match:
            candidates.append((float(match[2]), int(match[1]), path))
    return max(candidates)[2] if candidates else None


def model_from_checkpoint(checkpoint, device='cpu'):
    arch = checkpoint['architecture']
    model = nn.build_model(arch['name'], **arch['config']).to(device)
    model.load_state_dict(checkpoint['model'])
    return model.eval()


def best_checkpoint_name(epoch, accuracy):
    return f'best_model_epoch_{epoch}_acc_{100 * accuracy:.4f}.pth'


# ---------------------------------------------------------------- training

def train_epoch(model, optimizer, criterion, images, labels, batch_size, progress=True, desc='train',
                lr_at=None, first_step=0, augment_batches=False):
    """One pass over shuffled minibatches. Returns mean loss, accuracy and the mean L2 norm of
    each weight's gradient, sampled every NORM_EVERY steps (every step would cost ~5% of the epoch).
    lr_at(first_step + i) sets the rate of the epoch's i-th step (0-based); augment_batches distorts
    each batch with data.augment (loss and accuracy are then those of the distorted images)."""
    weights = [(name, p) for name, p in model.named_parameters() if name.endswith('weight')]
    loss_sum = torch.zeros((), device=labels.device)
    correct = torch.zeros((), device=labels.device, dtype=torch.long)
    norm_sum = torch.zeros(len(weights), device=labels.device)
    steps = math.ceil(len(labels) / batch_size)
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, unit='batch')
    for step, (x, y) in enumerate(batches(images, labels, batch_size, shuffle=True), 1):
        if lr_at:
            optimizer.lr = lr_at(first_step + step - 1)
        if augment_batches:
            x = augment(x)
        logits = model.logits(x)
        loss = criterion(logits, y)
        model.backward(criterion.backward(), input_grad=False)
        optimizer.step()
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        if step % NORM_EVERY == 1:
            norm_sum += torch.stack([torch.linalg.vector_norm(p.grad) for _, p in weights])
        bar.update()
        if step % 50 == 0 or step == steps:
            seen = min(step * batch_size, len(labels))
            running_loss = loss_sum.item() / seen
            if not math.isfinite(running_loss):
                bar.close()
                raise TrainingError(f'the training loss became {running_loss} at step {step} of {desc}; '
                                    f'lower the learning rate (--lr) or check the input data')
            bar.set_postfix(loss=f'{running_loss:.4f}', acc=f'{correct.item() / seen:.4f}')
    bar.close()
    n = len(labels)
    samples = len(range(1, steps + 1, NORM_EVERY))
    grad_norms = {f'grad_norm_{name.removesuffix(".weight")}': v / samples
                  for (name, _), v in zip(weights, norm_sum.tolist())}
    return {'train_loss': loss_sum.item() / n, 'train_acc': correct.item() / n, **grad_norms}


def train(config=None, **overrides):
    """Train as `config` (a Config, or keyword overrides of its defaults) says.

    Returns a dict: history (DataFrame), best_checkpoint (Path or None in a dry run) and
    test (the Evaluation of the best checkpoint on the test set)."""
    config = Config(**{**asdict(config), **overrides}) if config else make_config(**overrides)
    device = resolve_device(config.device)
    checkpoint = load_checkpoint(config.resume, device) if config.resume else None
    if checkpoint:  # continue the same recipe; only the length, device and folders may change
        config = Config(**{**asdict(config), **{k: checkpoint['config'][k] for k in RECIPE}})
        planned = checkpoint['config']['epochs']
        if config.schedule != 'constant' and config.epochs != planned:
            raise TrainingError(f'{config.resume} follows a {config.schedule} learning-rate schedule planned for '
                                f'--epochs {planned}: resume it with --epochs {planned} (another length would change '
                                f'the rates it has already used), or start a new run to train longer')
    check_config(config)
    data = load_splits(config.data_dir, config.val_size, device, config.train_subset or None)
    select = config.select_on
    if config.dry_run:
        data['train'] = tuple(t[:10 * config.batch_size] for t in data['train'])
        config.epochs = 1

    torch.manual_seed(config.seed)
    model = nn.build_model(config.model, **model_options(config)).to(device)
    optimizer = nn.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    criterion = nn.CrossEntropyLoss(config.label_smoothing)
    steps_per_epoch = math.ceil(len(data['train'][1]) / config.batch_size)

    def lr_at(step):
        return learning_rate(config.schedule, config.lr, step, config.epochs * steps_per_epoch)
    history, start_epoch, best = [], 1, {'epoch': 0, 'accuracy': -1.0, 'path': None}
    if checkpoint:
        model.load_state_dict(checkpoint['model'])
        optimizer.load_state_dict(checkpoint['optimizer'])
        history, best = checkpoint['history'], checkpoint['best']
        start_epoch = checkpoint['epoch'] + 1
        print(f'Resuming from {config.resume} after epoch {checkpoint["epoch"]}'
              + (f' of {config.epochs}: nothing left to train' if start_epoch > config.epochs else ''))

    folder = Path(config.checkpoint_dir)
    print(f'Training {type(model).__name__} ({model.num_parameters():,} parameters) on {device} for '
          f'{config.epochs} epochs: {len(data["train"][1]):,} train / {len(data["val"][1]):,} val / '
          f'{len(data["test"][1]):,} test images')
    start_time = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        torch.manual_seed(epoch_seed(config.seed, epoch))
        tic = time.perf_counter()
        first_step = (epoch - 1) * steps_per_epoch
        row = {'epoch': epoch, 'lr': lr_at(first_step)}  # the rate of the epoch's first step
        row |= train_epoch(model, optimizer, criterion, *data['train'], config.batch_size,
                           config.progress, desc=f'epoch {epoch}/{config.epochs}',
                           lr_at=lr_at, first_step=first_step, augment_batches=config.augment)
        for split in ('val', 'test'):
            if len(data[split][1]):
                result = evaluate(model, *data[split])
                row |= {f'{split}_loss': result.loss, f'{split}_acc': result.accuracy}
            else:
                row |= {f'{split}_loss': math.nan, f'{split}_acc': math.nan}
        row['epoch_time'] = time.perf_counter() - tic
        history.append(row)
        improved = row[f'{select}_acc'] > best['accuracy']
        print(f'epoch {epoch:3d}/{config.epochs}  loss {row["train_loss"]:.4f}  train {row["train_acc"]:.4f}  '
              f'val {row["val_acc"]:.4f}  test {row["test_acc"]:.4f}  {row["epoch_time"]:.1f}s'
              + ('  * best' if improved else ''), flush=True)
        if config.dry_run:
            continue
        checkpoint = {
            'format_version': 1,
            'architecture': {'name': type(model).__name__, 'config': model.config},
            'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'epoch': epoch, 'metrics': row, 'config': asdict(config), 'history': history,
        }
        if improved:
            previous = best
            path = folder / best_checkpoint_name(epoch, row[f'{select}_acc'])
            # 'created': this run made the file, so it may remove it when it finds a better one;
            # a file of the same name that was already there (a shipped checkpoint) stays
            best = {'epoch': epoch, 'accuracy': row[f'{select}_acc'], 'path': str(path), 'created': not path.exists()}
            save_checkpoint(path, checkpoint | {'best': best})
            if previous.get('created') and previous['path'] != best['path'] and Path(previous['path']).exists():
                Path(previous['path']).unlink()  # only after the new best is safely on disk
        save_checkpoint(folder / LAST_CHECKPOINT, checkpoint | {'best': best})
        pd.DataFrame(history).to_csv(folder / HISTORY_FILE, index=False)
    total = time.perf_counter() - start_time

    history = pd.DataFrame(history)
    if config.dry_run:
        print(f'Dry run finished in {total:.1f}s; nothing saved.')
        return {'history': history, 'best_checkpoint': None, 'test': evaluate(model, *data['test'])}
    best_model = model_from_checkpoint(load_checkpoint(best['path'], device), device)
    test = evaluate(best_model, *data['test'])
    print(f'Finished in {total:.1f}s. Best checkpoint: {best["path"]} (epoch {best["epoch"]}, '
          f'{select} accuracy {best["accuracy"]:.4f}); test accuracy {test.accuracy:.4f}')
    return {'history': history, 'best_checkpoint': Path(best['path']), 'test': test}


def check_config(config):
    problems = []
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        problems.append('epochs, batch size and learning rate must be positive')
    if config.init not in nn.INITS:
        problems.append(f'init must be one of {nn.INITS}')
    if config.select_on not in ('val', 'test'):
        problems.append("select_on must be 'val' or 'test'")
    if config.model not in nn.MODELS:
        problems.append(f'model must be one of {tuple(nn.MODELS)}')
    if config.schedule not in SCHEDULES:
        problems.append(f'schedule must be one of {SCHEDULES}')
    if not 0 <= config.label_smoothing < 1 or not 0 <= config.dropout < 1 or config.weight_decay < 0:
        problems.append('label smoothing and dropout must be in [0, 1), weight decay >= 0')
    if config.dropout and config.model != 'CNN':
        problems.append(f'{config.model} has no dropout layer: use --model CNN or --dropout 0')
    if config.select_on == 'val' and config.val_size == 0:
        problems.append("with val_size 0 there is nothing to select on: use select_on 'test'")
    if problems:
        raise ValueError('; '.join(problems))


# ---------------------------------------------------------------- command line

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(Config):
        flag, help = '--' + f.name.replace('_', '-'), f.metadata['help']
        if isinstance(f.default, bool):
            action = argparse.BooleanOptionalAction if f.default else 'store_true'
            parser.add_argument(flag, action=action, default=f.default, help=help)
        else:
            parser.add_argument(flag, type=f.type, default=f.default, choices=f.metadata.get('choices'), help=help)
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS.get(preset, {}))  # a preset's values become defaults: flags given still win
    return Config(**vars(parser.parse_args(argv)))


def resume_command(config):
    """The command that continues this run where it stopped, in the same folder."""
    command = f'python train.py --resume {shlex.quote(str(Path(config.checkpoint_dir) / LAST_CHECKPOINT))}'
    for name in ('epochs', 'checkpoint_dir', 'data_dir'):
        if getattr(config, name) != getattr(Config, name):
            command += f' --{name.replace("_", "-")} {shlex.quote(str(getattr(config, name)))}'
    return command


def main(argv=None):
    config = parse_args(argv)
    try:
        train(config)
    except KeyboardInterrupt:
        print(f'\nInterrupted. Checkpoints already written are intact; continue with '
              f'`{resume_command(config)}`.', file=sys.stderr)
        return 130
    except (DataError, TrainingError, ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
