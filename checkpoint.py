"""Checkpoints: the one format train.py writes and predict.py, the app and the notebook read.

A checkpoint is a dict written by torch.save and read back with weights_only=True, so loading
one never runs code; everything in it is checked once loaded (structure_problem), and the model it
builds must give finite outputs (build_model), before anything uses it. Format 2 holds:

    format_version  FORMAT_VERSION
    architecture    {'name': a model in nn.MODELS, 'config': its constructor options}
    model           the state dict: parameter name -> dense floating-point tensor, every value finite
    epoch           the epoch it was saved after (1-based)
    metrics         that epoch's history row: val_acc, test_acc (NaN without that split), losses, ...
    config          train.py's options (val_size among them: the held-out split val_acc is measured on)
    optimizer       nn.Adam's state, to resume
    history         every epoch's row so far
    best            the run's best so far: {'epoch', 'accuracy', 'path': a file name in this file's folder, or None}
    checksum        optional: SHA-256 of the weights (weights_checksum), written by `save`, so that a flipped byte
                    is caught on load; files saved before it was added load without the check
    calibration     optional: {'temperature': T, 'split': 'val', 'nll_before', 'nll_after', 'energy_limit'}
                    (metrics.calibration), fitted by train.py on the validation split: predict divides the
                    logits by T and calls an input with an energy above energy_limit "not a digit". Absent,
                    T = 1 (the probabilities are the raw softmax) and there is no energy limit

Shipped models live in files.SHIPPED_DIR (tracked by git); user runs go to files.RUNS_DIR (ignored by git).
This module imports neither pandas nor train.py: inference depends on it alone.
"""
import hashlib
import math
import os
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

import files
import nn
from preprocess import normalize
FORMAT_VERSION = 2
LAST = 'last.pth'  # the resume point of a run, refreshed every epoch: never a candidate for "best"
FIELDS = {'format_version': int, 'architecture': dict, 'model': dict, 'epoch': int, 'metrics': dict,
          'config': dict, 'optimizer': dict, 'history': list, 'best': dict}
TEMPERATURES = (0.05, 20.0)  # the range metrics.fit_temperature searches: a temperature outside it was not fitted


class CheckpointError(ValueError):
    """A checkpoint cannot be read, written or used; the message names the file and what to do."""


def save(path, checkpoint):
    """Write `checkpoint` to `path` whole or not at all (files.atomic_write), with the checksum of its weights."""
    checkpoint = {**checkpoint, 'checksum': weights_checksum(checkpoint['model'])}
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
    """The checkpoint at `path`, loaded safely onto `map_location` and checked (structure_problem)
    before anything touches a model.
    Raises FileNotFoundError or CheckpointError with a message that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} ' + ('is a folder; pass a .pth file in it' if path.is_dir() else
                                'does not exist; train one with `python train.py` or point to an existing .pth file'))
    device_problem = missing_device(map_location)
    if device_problem:
        raise CheckpointError(f'cannot load checkpoint {path} onto {map_location}: {device_problem}')
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'GLOBAL' in str(e).upper():  # a pickle that names code to run: torch refused it
            raise CheckpointError(f'checkpoint {path} is not a checkpoint of this project; '
                                  f'refused for safety (loading it would run code)') from None
        raise CheckpointError(f'checkpoint {path} cannot be read: it is corrupt or not a checkpoint '
                              f'of this project') from None
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]  # an EOFError has no message
        raise CheckpointError(f'checkpoint {path} cannot be read ({reason}): '
                              f'it is corrupt or not a checkpoint of this project') from None
    problem = structure_problem(saved)
    if problem:
        raise CheckpointError(f'checkpoint {path} {problem}')
    return saved


def missing_device(location):
    """Why a CUDA `location` (a name or torch.device) cannot be used here, or None."""
    try:
        device = torch.device(location) if isinstance(location, (str, torch.device)) else None
    except (RuntimeError, ValueError):
        return f'{location!r} is not a device name; use "cpu" or "cuda"'
    if device is None or device.type != 'cuda':
        return None
    if not torch.cuda.is_available():
        return 'CUDA is not available on this machine; use device "cpu"'
    if (device.index or 0) >= torch.cuda.device_count():
        return f'this machine has {torch.cuda.device_count()} CUDA device(s); use "cuda:0" or "cpu"'
    return None


def structure_problem(saved):
    """What is wrong with a loaded checkpoint, or None: every check of what is read from a checkpoint
    file, in one place (the weights' fit to the model and its outputs are checked by build_model)."""
    for check in (fields_problem, weights_problem, records_problem, calibration_problem):
        problem = check(saved)
        if problem:
            return problem
    return None


def fields_problem(saved):
    """Whether it is a dict of this format with every field of the right type and a known architecture."""
    if not isinstance(saved, dict):
        return f'is not a checkpoint of this project (it holds a {type(saved).__name__}, not a dict)'
    missing = [key for key in FIELDS if key not in saved]
    if missing:
        return f'is not a complete checkpoint of this project: it lacks {", ".join(missing)}'
    wrong = [f'{key} is a {type(saved[key]).__name__}' for key, kind in FIELDS.items()
             if not isinstance(saved[key], kind) or isinstance(saved[key], bool)]
    if wrong:
        return f'is not a checkpoint of this project: {", ".join(wrong)}'
    if saved['format_version'] != FORMAT_VERSION:
        return (f'has format {saved["format_version"]}; this version of the project reads format '
                f'{FORMAT_VERSION}: train a new one with `python train.py`')
    name = saved['architecture'].get('name')
    if name not in nn.MODELS or not isinstance(saved['architecture'].get('config'), dict):
        return f'records an unknown architecture {name!r}; this version knows {sorted(nn.MODELS)}'
    return None


def weights_problem(saved):
    """Whether the weights are named dense floating-point tensors, finite, and match their checksum."""
    state = saved['model']
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return 'is not a checkpoint of this project: its model is not a dict of named tensors'
    odd = [f'{k} ({v.layout})' for k, v in state.items() if v.layout != torch.strided]
    odd = odd or [f'{k} ({v.dtype})' for k, v in state.items() if not v.is_floating_point()]
    if odd:
        return (f'holds weights that are not dense floating-point tensors ({", ".join(odd)}): it was not '
                f'saved by this project; retrain the model')
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        return f'holds weights that are not finite (NaN or infinite) in {", ".join(bad)}: retrain the model'
    recorded = saved.get('checksum')
    if recorded is not None and recorded != weights_checksum(state):
        return ('is damaged: its weights do not match the checksum recorded when it was saved (a changed '
                'byte on disk); restore it from a copy or retrain it')
    return None


def weights_checksum(state):
    """SHA-256 (hex) of a state dict: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f'{name} {tensor.dtype} {tuple(tensor.shape)};'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def records_problem(saved):
    """Whether the recorded epoch, accuracies, validation size, history and best entry make sense."""
    if saved['epoch'] < 1:
        return f'records epoch {saved["epoch"]}; epochs count from 1: it was not saved by this project'
    for key in ('val_acc', 'test_acc'):
        if not accuracy(saved['metrics'].get(key)):
            return (f'records {key} {saved["metrics"].get(key)!r}, not an accuracy between 0 and 1: '
                    f'it was not saved by this project; retrain the model')
    val_size = saved['config'].get('val_size')
    if not isinstance(val_size, int) or isinstance(val_size, bool) or val_size < 0:
        return 'records no val_size in its config'
    if not all(isinstance(row, dict) and all(isinstance(k, str) and real(v) for k, v in row.items())
               for row in saved['history']):
        return 'records a history that is not a list of rows of numbers: it was not saved by this project'
    best = saved['best']
    path = best.get('path')
    if not (isinstance(best.get('epoch'), int) and real(best.get('accuracy')) and not best['accuracy'] > 1):
        return f'records a best entry {best!r} without an epoch and an accuracy of at most 1'
    if path is not None and not (isinstance(path, str) and path == Path(path).name and path not in ('', '.', '..')):
        return (f"records a best checkpoint {path!r} that is not a file name in the checkpoint's own folder: "
                f'it was not saved by this project')
    return None


def calibration_problem(saved):
    """Whether the calibration, if any, is a fitted temperature and a finite energy limit."""
    if 'calibration' not in saved:
        return None
    calibration = saved['calibration']
    if not isinstance(calibration, dict):
        return f'records a calibration that is a {type(calibration).__name__}, not a dict; retrain it'
    t, limit = calibration.get('temperature'), calibration.get('energy_limit', 0.0)
    low, high = TEMPERATURES
    if not (number(t) and low <= t <= high) or not number(limit):
        return (f'records a calibration that is not a temperature between {low} and {high:g} and a finite energy '
                f'limit (temperature {t!r}, energy_limit {limit!r}); retrain it, or delete its calibration entry')
    return None


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def real(value):
    """A number that may be NaN (an accuracy without its split): not a bool, a string or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)


def accuracy(value):
    return real(value) and (math.isnan(value) or 0 <= value <= 1)


def calibration(checkpoint):
    """(temperature, energy_limit) for predict: the checkpoint's calibration, or (1.0, inf) when it has none."""
    calibration = checkpoint.get('calibration', {})
    return float(calibration.get('temperature', 1.0)), float(calibration.get('energy_limit', math.inf))


def build_model(checkpoint, device='cpu'):
    """The model a loaded checkpoint records, with its weights, on `device`, in evaluation mode.
    Raises CheckpointError when the weights do not fit the recorded architecture, or give outputs
    that are not finite on a probe batch (weights so large that the logits overflow)."""
    arch = checkpoint['architecture']
    try:
        model = nn.build_model(arch['name'], **arch['config']).to(device)
        model.load_state_dict(checkpoint['model'])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f'does not fit the models this version can build ({type(e).__name__}: {e}); '
                              f'it was saved by another architecture or another version of the project') from None
    model.eval()
    if not torch.isfinite(model.logits(probe_batch(device))).all():
        raise CheckpointError('holds weights whose outputs are not finite numbers (they overflow) on a probe '
                              'input: it is damaged or was not saved by this project; retrain the model')
    return model


def probe_batch(device):
    """Two model inputs: a blank one and seeded random pixels, normalised as predict's are."""
    pixels = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pixels[0] = 0
    return normalize(pixels).to(device)


def validation(checkpoint):
    """(val_size, val_acc): the measure find_best compares; val_acc is NaN without a validation split."""
    return checkpoint['config']['val_size'], float(checkpoint['metrics']['val_acc'])


def usable(path):
    """validation() of the checkpoint at `path`, once it has loaded and built (CheckpointError naming it if not)."""
    saved = load(path)
    try:
        build_model(saved)
    except CheckpointError as e:
        raise CheckpointError(f'checkpoint {path} {e}') from None
    return validation(saved)


def find_best(*folders):
    """The checkpoint to use by default: among every *.pth but last.pth in `folders` (not their
    subfolders), the highest validation accuracy recorded in the checkpoint (never the number in
    a file name). Accuracies are only compared on the same held-out split: the val_size of the
    first checkpoint found that has a validation accuracy (for load_model, the shipped models':
    5,000 images). A checkpoint measured on another split, or on none, is chosen only when no
    checkpoint has that measure. Ties go to the earlier folder, then the earlier name: so a
    user's model replaces a shipped one only when it is strictly better. A file that cannot be
    loaded and built is skipped with one line on stderr. None if there is no checkpoint."""
    candidates = []
    for folder in folders:
        for path in sorted(Path(folder).glob('*.pth')):
            if path.name != LAST:
                try:
                    candidates.append((path, usable(path)))
                except Exception as e:  # whatever a damaged file raises, the other checkpoints still serve
                    print(f'note: {e} (skipped: move or delete that file)', file=sys.stderr)
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
