"""checkpoint.py: atomic writes, safe and checked loading, choosing the best, the run folder's lock."""
import errno
import os
import signal
import subprocess
import sys

import pytest
import torch

import checkpoint
import files
import nn
from checkpoint import CheckpointError


def make(val_acc=0.98, val_size=5000, net=None, **changes):
    """A valid checkpoint of `net` (a fresh Net) recording val_acc on val_size held-out images."""
    net = net or nn.Net()
    return {'format_version': checkpoint.FORMAT_VERSION, 'architecture': {'name': type(net).__name__, 'config': net.config},
            'model': net.state_dict(), 'optimizer': nn.Adam(net.parameters()).state_dict(), 'epoch': 3,
            'metrics': {'val_acc': val_acc, 'test_acc': 0.5}, 'config': {'val_size': val_size}, 'history': [],
            'best': {'epoch': 3, 'accuracy': val_acc, 'path': None}} | changes


def test_round_trip_rebuilds_the_recorded_model(tmp_path):
    model = nn.Net()
    checkpoint.save(tmp_path / 'a.pth', make(net=model))
    restored = checkpoint.build_model(checkpoint.load(tmp_path / 'a.pth'))
    x = torch.randn(2, 784)
    assert torch.equal(restored(x), model(x)) and not restored.training
    assert [p.name for p in tmp_path.iterdir()] == ['a.pth']  # no temporary file left


def test_interrupted_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / 'best.pth'
    checkpoint.save(path, make(val_acc=0.5))
    real_save = torch.save

    def crash_halfway(obj, f):
        real_save(obj, f)
        f.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, make(val_acc=0.9))
    monkeypatch.undo()
    assert checkpoint.load(path)['metrics']['val_acc'] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ['best.pth']


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['ctrl-c', 'sigterm'])
def test_a_signal_in_the_middle_of_a_write_takes_effect_once_the_file_is_complete(tmp_path, monkeypatch, sig):
    """torch.save turns an exception raised inside its writer into a RuntimeError: without the deferral a
    Ctrl-C here was reported as a full disk, and the run lost its resume hint."""
    def interrupt(signum, frame):  # as Python's own SIGINT handler, and train.main's for SIGTERM
        raise KeyboardInterrupt
    real_save, writes = torch.save, []

    def signalled_halfway(obj, f):
        class File:  # f, but the signal arrives during the second write
            def write(self, data):
                writes.append(len(data))
                if len(writes) == 2:
                    signal.raise_signal(sig)
                return f.write(data)

            def flush(self):
                f.flush()
        real_save(obj, File())

    monkeypatch.setattr(torch, 'save', signalled_halfway)
    previous = signal.signal(sig, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            checkpoint.save(tmp_path / 'last.pth', make(val_acc=0.9))
    finally:
        signal.signal(sig, previous)
    assert len(writes) > 2 and checkpoint.load(tmp_path / 'last.pth')['metrics']['val_acc'] == 0.9
    assert [p.name for p in tmp_path.iterdir()] == ['last.pth']


@pytest.mark.parametrize('failure', [OSError(errno.ENOSPC, 'No space left on device'),
                                     RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598')],
                         ids=['oserror', 'torch-runtime-error'])
def test_a_full_disk_is_a_clear_error_naming_the_file(tmp_path, monkeypatch, failure):
    def full(obj, f):
        raise failure
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(CheckpointError, match=rf'could not write {tmp_path / "last.pth"} .*; free some disk space'):
        checkpoint.save(tmp_path / 'last.pth', make())
    assert not list(tmp_path.iterdir())


def test_bad_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist; train one with `python train.py`'):
        checkpoint.load(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='is a folder; pass a .pth file'):
        checkpoint.load(tmp_path)
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='corrupt.pth cannot be read'):
        checkpoint.load(corrupt)
    cases = {'foreign': ({'state_dict': {}}, 'lacks format_version, architecture, model'),
             'no-config': ({k: v for k, v in make().items() if k not in ('config', 'optimizer')}, 'lacks config, optimizer'),
             'model-not-tensors': (make(model={'first_layer.weight': [1, 2]}), 'its model is not a dict of named tensors'),
             'model-a-list': (make(model=[1]), 'model is a list'),
             'old-format': (make(format_version=1), 'has format 1; this version of the project reads format 2'),
             'unknown-arch': (make(architecture={'name': 'ConvNet', 'config': {}}), "unknown architecture 'ConvNet'")}
    for name, (saved, message) in cases.items():
        torch.save(saved, tmp_path / f'{name}.pth')
        with pytest.raises(CheckpointError, match=message):
            checkpoint.load(tmp_path / f'{name}.pth')


def test_non_finite_weights_are_refused_on_load(tmp_path):
    saved = make()
    saved['model']['second_layer.weight'][3, 4] = float('nan')
    saved['model']['output_layer.bias'][0] = float('inf')
    torch.save(saved, tmp_path / 'nan.pth')
    with pytest.raises(CheckpointError, match='weights that are not finite .* in second_layer.weight, output_layer.bias'):
        checkpoint.load(tmp_path / 'nan.pth')


class RunsCode:
    def __reduce__(self):
        return os.system, ('touch pwned',)


def test_a_pickle_that_would_run_code_is_refused_without_torchs_advice(tmp_path):
    torch.save({**make(), 'extra': RunsCode()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(tmp_path / 'evil.pth')
    assert str(error.value) == (f'checkpoint {tmp_path / "evil.pth"} is not a checkpoint of this project; '
                                f'refused for safety (loading it would run code)')
    assert not (tmp_path / 'pwned').exists() and not os.path.exists('pwned')


def test_find_best_reads_the_recorded_accuracy_on_the_same_split_not_the_file_name(tmp_path):
    shipped, runs = tmp_path / 'shipped', tmp_path / 'runs'
    shipped.mkdir()
    checkpoint.save(shipped / 'mlp.pth', make(0.982))
    checkpoint.save(shipped / 'cnn.pth', make(0.995))
    assert checkpoint.find_best(shipped, runs) == shipped / 'cnn.pth'
    runs.mkdir()
    checkpoint.save(runs / 'best_model_epoch_9_acc_99.9000.pth', make(0.97))           # the name lies
    checkpoint.save(runs / 'best_model_epoch_2_acc_99.9900.pth', make(0.999, val_size=500))  # another split
    checkpoint.save(runs / 'last.pth', make(1.0))                                      # a resume point
    (runs / 'broken.pth').write_bytes(b'junk')
    assert checkpoint.find_best(shipped, runs) == shipped / 'cnn.pth'
    checkpoint.save(runs / 'tie.pth', make(0.995))
    assert checkpoint.find_best(shipped, runs) == shipped / 'cnn.pth'  # a user's model must be better
    checkpoint.save(runs / 'better.pth', make(0.996))
    assert checkpoint.find_best(shipped, runs) == runs / 'better.pth'
    assert checkpoint.find_best(tmp_path / 'none') is None
    only_unmeasured = tmp_path / 'unmeasured'
    only_unmeasured.mkdir()
    checkpoint.save(only_unmeasured / 'a.pth', make(float('nan'), val_size=0))
    assert checkpoint.find_best(only_unmeasured) == only_unmeasured / 'a.pth'


def test_the_shipped_checkpoints_are_in_the_current_format():
    for name in ('cnn.pth', 'mlp.pth'):
        saved = checkpoint.load(files.SHIPPED_DIR / name)
        assert saved['best']['path'] == name and 'created' not in saved['best']


def test_the_lock_refuses_a_second_run_and_removes_stale_temporary_files(tmp_path):
    stale = tmp_path / '.last.pth.123-abcd.tmp'
    tmp_path.mkdir(exist_ok=True)
    stale.write_bytes(b'left by a killed run')
    with checkpoint.locked(tmp_path):
        assert not stale.exists()
        other = subprocess.run([sys.executable, '-c', 'import sys, checkpoint\n'
                                'with checkpoint.locked(sys.argv[1]): pass', str(tmp_path)],
                               capture_output=True, text=True, cwd=files.ROOT)
        assert other.returncode == 1
        assert (f'another training run (pid {os.getpid()}) is using {tmp_path}; wait for it to finish '
                f'or pass another --checkpoint-dir') in other.stderr
    with checkpoint.locked(tmp_path):  # released when the run ends
        pass


def test_a_checkpoint_folder_that_is_a_file_or_not_writable_is_named(tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('')
    with pytest.raises(CheckpointError, match=f'--checkpoint-dir {tmp_path / "file"} is a file, not a folder'):
        with checkpoint.locked(tmp_path / 'file'):
            pass
    read_only = tmp_path / 'read-only'
    read_only.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: refuse the write as a read-only folder would
        def refuse(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, 'Permission denied', str(path))
        monkeypatch.setattr(checkpoint, 'open', refuse, raising=False)
    with pytest.raises(CheckpointError, match=f'--checkpoint-dir {read_only} is not writable '
                                              r'\(Permission denied\); pass a folder you can write to'):
        with checkpoint.locked(read_only):
            pass


CALIBRATION = {'temperature': 0.5, 'split': 'val', 'nll_before': 0.2, 'nll_after': 0.1, 'energy_limit': -3.0}


def test_calibration_round_trip_and_default(tmp_path):
    checkpoint.save(tmp_path / 'c.pth', make(calibration=CALIBRATION))
    assert checkpoint.load(tmp_path / 'c.pth')['calibration'] == CALIBRATION
    assert checkpoint.calibration(checkpoint.load(tmp_path / 'c.pth')) == (0.5, -3.0)
    assert checkpoint.calibration(make()) == (1.0, float('inf'))  # uncalibrated: T = 1, no energy limit


@pytest.mark.parametrize('calibration', [
    {'temperature': 0}, {'temperature': -1.0}, {'temperature': float('nan')}, {'temperature': float('inf')},
    {'temperature': '0.5'}, {'temperature': True}, {'split': 'val'}, {'temperature': 1.0, 'energy_limit': float('nan')},
    [0.5]], ids=['zero', 'negative', 'nan', 'inf', 'string', 'bool', 'missing', 'nan-limit', 'list'])
def test_a_bad_calibration_is_refused(tmp_path, calibration):
    torch.save(make(calibration=calibration), tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match=r'bad\.pth records a calibration'):
        checkpoint.load(tmp_path / 'bad.pth')
