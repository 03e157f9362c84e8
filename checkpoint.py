"""Checkpoints: the one format train.py writes and predict.py, the app and the notebook read.

A checkpoint is a dict written by torch.save and read back with weights_only=True, so loading
one never runs code. Format 2 holds:

    format_version  FORMAT_VERSION
    architecture    {'name': a model in nn.MODELS, 'config': its constructor options}
    model           the state dict: parameter name -> tensor, every value finite
    epoch           the epoch it was saved after (1-based)
    metrics         that epoch's history row: val_acc, test_acc (NaN without that split), losses, ...
    config          train.py's options (val_size among them: the held-out split val_acc is measured on)
    optimizer       nn.Adam's state, to resume
    history         every epoch's row so far
    best            the run's best so far: {'epoch', 'accuracy', 'path' relative to this file's folder}
    calibration     optional: {'temperature': T, 'split': 'val', 'nll_before', 'nll_after', 'energy_limit'}
                    (evaluate.calibration), fitted by train.py on the validation split: predict divides the
                    logits by T and calls an input with an energy above energy_limit "not a digit". Absent,
                    T = 1 (the probabilities are the raw softmax) and there is no energy limit

Shipped models live in files.SHIPPED_DIR (tracked by git); user runs go to files.RUNS_DIR (ignored by git).
This module imports neither pandas nor train.py: inference depends on it alone.
"""
import math
import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import torch

import files
import nn
FORMAT_VERSION = 2
LAST = 'last.pth'  # the resume point of a run, refreshed every epoch: never a candidate for "best"
FIELDS = {'format_version': int, 'architecture': dict, 'model': dict, 'epoch': int, 'metrics': dict,
          'config': dict, 'optimizer': dict, 'history': list, 'best': dict}


class CheckpointError(ValueError):
    """A checkpoint cannot be read, written or used; the message names the file and what to do."""


def save(path, checkpoint):
    """Write `checkpoint` to `path` whole or not at all (files.atomic_write)."""
    try:
        files.atomic_write(path, lambda f: torch.save(checkpoint, f))
    except files.WriteError as e:
        raise CheckpointError(f'{e}; free some disk space or pass another --checkpoint-dir') from None


def build(model, optimizer, epoch, metrics, config, history, best):
    """A checkpoint in the format above, of `model` (an nn model) and its `optimizer` after `epoch`."""
    return {'format_version': FORMAT_VERSION,
            'architecture': {'name': type(model).__name__, 'config': model.config},
            'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'epoch': epoch, 'metrics': metrics, 'config': config, 'history': history, 'best': best}


def save_calibrated(path, saved, calibration):
    """Store `calibration` (metrics.calibration's dict) in the loaded checkpoint `saved` and write it back to
    `path`, checked as load checks it. Returns the calibration."""
    problem = structure_problem({**saved, 'calibration': calibration})
    if problem:
        raise CheckpointError(f'checkpoint {path} {problem}')
    saved['calibration'] = calibration
    save(path, saved)
    return calibration


def load(path, map_location='cpu'):
    """The checkpoint at `path`, loaded safely onto `map_location` and checked (keys, types,
    format version, finite weights) before anything touches a model.
    Raises FileNotFoundError or CheckpointError with a message that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} ' + ('is a folder; pass a .pth file in it' if path.is_dir() else
                                'does not exist; train one with `python train.py` or point to an existing .pth file'))
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'GLOBAL' in str(e).upper():  # a pickle that names code to run: torch refused it
            raise CheckpointError(f'checkpoint {path} is not a checkpoint of this project; '
                                  f'refused for safety (loading it would run code)') from None
        raise CheckpointError(f'checkpoint {path} cannot be read: it is corrupt or not a checkpoint '
                              f'of this project') from None
    except Exception as e:
        raise CheckpointError(f'checkpoint {path} cannot be read ({str(e).splitlines()[0][:200]}): '
                              f'it is corrupt or not a checkpoint of this project') from None
    problem = structure_problem(saved)
    if problem:
        raise CheckpointError(f'checkpoint {path} {problem}')
    return saved


def structure_problem(saved):
    """What is wrong with a loaded checkpoint's structure, or None."""
    if not isinstance(saved, dict):
        return f'is not a checkpoint of this project (it holds a {type(saved).__name__}, not a dict)'
    missing = [key for key in FIELDS if key not in saved]
    if missing:
        return f'is not a complete checkpoint of this project: it lacks {", ".join(missing)}'
    wrong = [f'{key} is a {type(saved[key]).__name__}' for key, kind in FIELDS.items()
             if not isinstance(saved[key], kind)]
    if wrong:
        return f'is not a checkpoint of this project: {", ".join(wrong)}'
    if saved['format_version'] != FORMAT_VERSION:
        return (f'has format {saved["format_version"]}; this version of the project reads format '
                f'{FORMAT_VERSION}: train a new one with `python train.py`')
    name = saved['architecture'].get('name')
    if name not in nn.MODELS or not isinstance(saved['architecture'].get('config'), dict):
        return f'records an unknown architecture {name!r}; this version knows {sorted(nn.MODELS)}'
    state = saved['model']
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return 'is not a checkpoint of this project: its model is not a dict of named tensors'
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return f'holds weights that are not finite (NaN or infinite) in {", ".join(bad)}: retrain the model'
    for key in ('val_acc', 'test_acc'):
        if not isinstance(saved['metrics'].get(key), (int, float)):
            return f'records no {key} in its metrics'
    if not isinstance(saved['config'].get('val_size'), int):
        return 'records no val_size in its config'
    if 'calibration' in saved:
        calibration = saved['calibration']
        if not isinstance(calibration, dict):
            return f'records a calibration that is a {type(calibration).__name__}, not a dict; retrain it'
        t, limit = calibration.get('temperature'), calibration.get('energy_limit', 0.0)
        if not (number(t) and t > 0) or not number(limit):
            return (f'records a calibration that is not a positive finite temperature and a finite energy limit '
                    f'(temperature {t!r}, energy_limit {limit!r}); retrain it, or delete its calibration entry')
    return None


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def calibration(checkpoint):
    """(temperature, energy_limit) for predict: the checkpoint's calibration, or (1.0, inf) when it has none."""
    calibration = checkpoint.get('calibration', {})
    return float(calibration.get('temperature', 1.0)), float(calibration.get('energy_limit', math.inf))


def build_model(checkpoint, device='cpu'):
    """The model a loaded checkpoint records, with its weights, on `device`, in evaluation mode.
    Raises CheckpointError when the weights do not fit the recorded architecture."""
    arch = checkpoint['architecture']
    try:
        model = nn.build_model(arch['name'], **arch['config']).to(device)
        model.load_state_dict(checkpoint['model'])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f'does not fit the models this version can build ({type(e).__name__}: {e}); '
                              f'it was saved by another architecture or another version of the project') from None
    return model.eval()


def validation(checkpoint):
    """(val_size, val_acc): the measure find_best compares; val_acc is NaN without a validation split."""
    return checkpoint['config']['val_size'], float(checkpoint['metrics']['val_acc'])


def find_best(*folders):
    """The checkpoint to use by default: among every *.pth but last.pth in `folders` (not their
    subfolders), the highest validation accuracy recorded in the checkpoint (never the number in
    a file name). Accuracies are only compared on the same held-out split: the val_size of the
    first checkpoint found that has a validation accuracy (for load_model, the shipped models':
    5,000 images). A checkpoint measured on another split, or on none, is chosen only when no
    checkpoint has that measure. Ties go to the earlier folder, then the earlier name: so a
    user's model replaces a shipped one only when it is strictly better. Unreadable files are
    skipped. None if there is no checkpoint."""
    candidates = []
    for folder in folders:
        for path in sorted(Path(folder).glob('*.pth')):
            if path.name != LAST:
                try:
                    candidates.append((path, validation(load(path))))
                except (OSError, CheckpointError):
                    continue
    measured = [(size, acc) for _, (size, acc) in candidates if not math.isnan(acc)]
    if not measured:
        return candidates[0][0] if candidates else None
    reference = measured[0][0]

    def score(candidate):
        size, acc = candidate[1]
        return (size == reference and not math.isnan(acc), acc if not math.isnan(acc) else -1.0)
    return max(candidates, key=score)[0]  # max keeps the first of equal scores


@contextmanager
def locked(folder):
    """Hold `folder` for one training run: create it (checking it is a writable folder), take an
    exclusive lock on folder/.lock (released when the run ends or its process dies), and remove
    temporary files that killed runs left. A second run in the folder is refused at once.
    Without fcntl (Windows) there is no lock and no clean-up."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / '.lock', 'a+')
    except (FileExistsError, NotADirectoryError):
        raise CheckpointError(f'--checkpoint-dir {folder} is a file, not a folder; pass a folder') from None
    except OSError as e:
        raise CheckpointError(f'--checkpoint-dir {folder} is not writable ({e.strerror}); '
                              f'pass a folder you can write to') from None
    with handle:
        try:
            import fcntl
        except ImportError:
            yield folder
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or '?'
            raise CheckpointError(f'another training run (pid {pid}) is using {folder}; '
                                  f'wait for it to finish or pass another --checkpoint-dir') from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        for stale in folder.glob('.*.tmp'):
            stale.unlink(missing_ok=True)
        yield folder
