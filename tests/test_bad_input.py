"""Everything read from disk is checked: crafted checkpoints, drawn-digit files, MNIST files and saved drawings
each get a one-line error naming the file (or are skipped, saying so); a run writes only in its own folder."""
import dataclasses
import errno
import gzip
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import checkpoint
import evaluate
import files
import my_digits
import nn
import predict
import train
from checkpoint import CheckpointError

SEVEN = [[(60, 60), (220, 60), (120, 240)]]


def make(net=None, **changes):
    """A checkpoint as train.py writes it (its whole recipe in config), with `changes`."""
    net = net or nn.Net()
    return {'format_version': checkpoint.FORMAT_VERSION, 'architecture': {'name': 'Net', 'config': net.config},
            'model': net.state_dict(), 'optimizer': nn.Adam(net.parameters()).state_dict(), 'epoch': 3,
            'metrics': {'val_acc': 0.9, 'test_acc': 0.9},
            'config': dataclasses.asdict(train.Config(epochs=3, schedule='constant')), 'history': [],
            'best': {'epoch': 3, 'accuracy': 0.9, 'path': None}} | changes


def weights(**changes):
    return {**nn.Net().state_dict(), **changes}


def bit_flipped(path):
    """The checkpoint at `path` with one bit of its first weight flipped on disk."""
    raw = bytearray(path.read_bytes())
    at = raw.find(checkpoint.load(path)['model']['first_layer.weight'].numpy().tobytes()[:64])
    raw[at + 10] ^= 1
    path.write_bytes(bytes(raw))
    return path


BAD_CHECKPOINTS = {
    'empty': (b'', r'cannot be read \(EOFError\): it is corrupt'),
    'two-bytes': (b'PK', 'cannot be read'),
    'bool-weights': (make(model=weights(**{'first_layer.weight': torch.ones(256, 784, dtype=torch.bool)})),
                     r'not dense floating-point tensors \(first_layer.weight \(torch.bool\)\)'),
    'int-weights': (make(model=weights(**{'output_layer.bias': torch.zeros(10, dtype=torch.int64)})),
                    'not dense floating-point'),
    'complex-weights': (make(model=weights(**{'output_layer.bias': torch.zeros(10, dtype=torch.complex64)})),
                        'not dense floating-point'),
    'sparse-weights': (make(model=weights(**{'output_layer.weight': torch.zeros(10, 128).to_sparse()})),
                       r'not dense floating-point tensors \(output_layer.weight \(torch.sparse_coo\)\)'),
    'epoch-0': (make(epoch=0), 'records epoch 0'),
    'accuracy-500%': (make(metrics={'val_acc': 5.0, 'test_acc': 0.9}), 'records val_acc 5.0, not an accuracy'),
    'accuracy-text': (make(metrics={'val_acc': '0.9', 'test_acc': 0.9}), "records val_acc '0.9', not an accuracy"),
    'temperature-huge': (make(calibration={'temperature': 1e300, 'energy_limit': -3.0}), 'records a calibration'),
    'temperature-tiny': (make(calibration={'temperature': 1e-300, 'energy_limit': -3.0}), 'records a calibration'),
    'best-outside': (make(best={'epoch': 3, 'accuracy': 0.9, 'path': '../shipped/mlp.pth'}),
                     "best checkpoint '../shipped/mlp.pth' that is not a file name in the checkpoint's own folder"),
    'best-absolute': (make(best={'epoch': 3, 'accuracy': 0.9, 'path': '/tmp/x.pth'}), 'not a file name'),
    'best-number': (make(best={'epoch': 3, 'accuracy': 0.9, 'path': 7}), 'not a file name'),
    'best-missing': (make(best={'epoch': 3}), 'records a best entry'),
    'history-junk': (make(history=[{'epoch': 1, 'val_acc': 'lots'}]), 'history that is not a list of rows'),
}


@pytest.mark.parametrize('name', BAD_CHECKPOINTS)
def test_a_crafted_checkpoint_is_refused_on_load_with_one_line(tmp_path, name):
    content, message = BAD_CHECKPOINTS[name]
    path = tmp_path / f'{name}.pth'
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as error:
        checkpoint.load(path)
    assert str(error.value).startswith(f'checkpoint {path} ') and '\n' not in str(error.value)


def test_a_flipped_byte_is_caught_by_the_checksum_and_old_files_without_one_still_load(tmp_path):
    saved = make()
    checkpoint.save(tmp_path / 'a.pth', saved)
    assert checkpoint.load(tmp_path / 'a.pth')['checksum'] == checkpoint.weights_checksum(saved['model'])
    with pytest.raises(CheckpointError, match='is damaged: its weights do not match the checksum'):
        checkpoint.load(bit_flipped(tmp_path / 'a.pth'))
    torch.save(make(), tmp_path / 'old.pth')  # saved before checksums: no check, still loads
    assert 'checksum' not in checkpoint.load(tmp_path / 'old.pth')


def test_the_checksum_covers_every_weight_and_ignores_the_device_layout():
    state = nn.Net().state_dict()
    reference = checkpoint.weights_checksum(state)
    assert checkpoint.weights_checksum({k: v.t().contiguous().t() for k, v in state.items()}) == reference
    state['output_layer.bias'][3] += 1e-7
    assert checkpoint.weights_checksum(state) != reference


def test_weights_whose_logits_overflow_are_refused_when_the_model_is_built(tmp_path):
    huge = {k: torch.full_like(v, 1e30) for k, v in nn.Net().state_dict().items()}
    checkpoint.save(tmp_path / 'huge.pth', make(model=huge))
    with pytest.raises(CheckpointError, match=f'checkpoint {tmp_path / "huge.pth"} holds weights whose outputs '
                                              'are not finite'):
        predict.load_model(tmp_path / 'huge.pth')


def test_logits_that_overflow_on_one_input_are_an_error_not_nan_percent(tmp_path):
    checkpoint.save(tmp_path / 'a.pth', make())
    model = predict.load_model(tmp_path / 'a.pth')
    model.temperature = 1e-320  # any input now overflows
    with pytest.raises(ValueError, match="the model's outputs are not finite numbers"):
        model.predict_strokes(SEVEN)


def test_cuda_without_cuda_says_so_not_corrupt(tmp_path, monkeypatch):
    checkpoint.save(tmp_path / 'a.pth', make())
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for load in (lambda: checkpoint.load(tmp_path / 'a.pth', map_location='cuda'),
                 lambda: predict.load_model(tmp_path / 'a.pth', device='cuda')):
        with pytest.raises(CheckpointError, match=f'cannot load checkpoint {tmp_path / "a.pth"} onto cuda: '
                                                  'CUDA is not available on this machine'):
            load()


def test_find_best_skips_an_empty_or_broken_file_with_one_line(tmp_path, capsys):
    checkpoint.save(tmp_path / 'good.pth', make())
    (tmp_path / 'a-empty.pth').write_bytes(b'')
    (tmp_path / 'b-two-bytes.pth').write_bytes(b'PK')
    torch.save(make(metrics={'val_acc': 5.0, 'test_acc': 0.9}), tmp_path / 'c-500-percent.pth')
    checkpoint.save(tmp_path / 'd-overflows.pth', make(model={k: torch.full_like(v, 1e30)
                                                              for k, v in nn.Net().state_dict().items()}))
    assert checkpoint.find_best(tmp_path) == tmp_path / 'good.pth'
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.startswith(f'note: checkpoint {tmp_path}/') for line in lines), lines
    assert all(line.endswith('(skipped: move or delete that file)') for line in lines)


# ---------------------------------------------------------------- training: what a run may write

def test_a_run_never_writes_in_the_current_or_the_shipped_folder(capsys):
    for folder, message in (('', "--checkpoint-dir '': name the folder"),
                            (str(files.SHIPPED_DIR), "the shipped models' folder is not for training runs"),
                            (str(files.SHIPPED_DIR / 'sub'), "the shipped models' folder")):
        assert train.main(['--checkpoint-dir', folder, '--epochs', '1']) == 1
        assert message in capsys.readouterr().err


BAD_RECIPES = {
    'lr-text': ({'lr': '0.1'}, "--lr '0.1': must be float"),
    'batch-0': ({'batch_size': 0}, '--batch-size 0: must be at least 1'),
    'unknown-model': ({'model': 'Transformer'}, '--model Transformer: choose one of'),
    'epochs-negative': ({'epochs': -3}, '--epochs -3: must be at least 1'),
    'epochs-text': ({'epochs': [3]}, '--epochs [3]: must be a whole number'),
}


@pytest.mark.parametrize('name', BAD_RECIPES)
def test_a_resumed_recipe_is_checked_like_the_command_line(tmp_path, capsys, name):
    changes, message = BAD_RECIPES[name]
    saved = make()
    checkpoint.save(tmp_path / 'r.pth', saved | {'config': saved['config'] | changes})
    assert train.main(['--resume', str(tmp_path / 'r.pth'), '--checkpoint-dir', str(tmp_path / 'run')]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {tmp_path / "r.pth"} records a recipe this version cannot use (') and message in err
    assert err.count('\n') == 1 and 'resume it with --epochs' not in err


def test_init_from_a_bool_weight_checkpoint_is_refused(tmp_path, capsys):
    torch.save(make(model=weights(**{'first_layer.weight': torch.ones(256, 784, dtype=torch.bool)})), tmp_path / 'b.pth')
    assert train.main(['--init-from', str(tmp_path / 'b.pth'), '--checkpoint-dir', str(tmp_path / 'run')]) == 1
    assert 'not dense floating-point tensors' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


@pytest.fixture
def quick(splits):
    return dict(train_subset=3000, val_size=1000, progress=False, data=splits(1000))


def test_resuming_the_shipped_model_writes_nothing_anywhere(tmp_path, splits):
    shipped = files.SHIPPED_DIR / 'cnn.pth'  # trained to its last epoch: nothing left to train
    before = shipped.read_bytes(), train.file_identity(shipped)
    result = train.train(resume=str(shipped), checkpoint_dir=tmp_path, progress=False, data=splits(5000))
    assert (shipped.read_bytes(), train.file_identity(shipped)) == before  # not even rewritten with the same bytes
    assert result['best_checkpoint'] == shipped
    assert [p.name for p in tmp_path.iterdir()] == ['.lock']


def test_a_resume_into_another_folder_calibrates_a_copy_and_leaves_the_first_run_alone(tmp_path, quick):
    train.train(epochs=1, schedule='constant', checkpoint_dir=tmp_path / 'a', **quick)
    best = next((tmp_path / 'a').glob('best_model_*.pth'))
    saved = checkpoint.load(best)
    del saved['calibration']  # as a run killed before calibration leaves it
    checkpoint.save(best, saved)
    before = {p.name: p.read_bytes() for p in (tmp_path / 'a').iterdir()}
    result = train.train(epochs=1, schedule='constant', checkpoint_dir=tmp_path / 'b',
                         resume=str(tmp_path / 'a' / 'last.pth'), **quick)
    assert {p.name: p.read_bytes() for p in (tmp_path / 'a').iterdir()} == before
    assert result['best_checkpoint'] == tmp_path / 'b' / best.name
    assert 'calibration' in checkpoint.load(result['best_checkpoint'])
    calibrated = result['best_checkpoint'].read_bytes()
    again = train.train(epochs=1, schedule='constant', checkpoint_dir=tmp_path / 'b',
                        resume=str(result['best_checkpoint']), **quick)  # nothing left: its input stays as it is
    assert again['best_checkpoint'] == result['best_checkpoint'] and result['best_checkpoint'].read_bytes() == calibrated


def test_a_run_at_chance_keeps_no_best_and_fails(tmp_path, quick):
    """Labels shuffled at random: epochs of 47 steps each escape train_epoch's per-epoch check, but no
    epoch at chance accuracy becomes a best (which predict could take as the default model)."""
    images, labels = quick['data']['train']
    n = quick['train_subset']
    shuffled = labels[:n][torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    data = quick['data'] | {'train': (images[:n], shuffled)}
    with pytest.raises(train.TrainingError, match='training failed: no epoch did better than guessing'):
        train.train(epochs=3, checkpoint_dir=tmp_path, **quick | {'data': data})
    assert not list(tmp_path.glob('best_*.pth')) and (tmp_path / 'last.pth').is_file()


def test_a_signal_while_the_first_checkpoint_is_written_still_names_it_to_resume(tmp_path, quick, monkeypatch):
    real_save = torch.save

    def signalled(obj, f):  # SIGTERM, as train.main handles it, arrives while last.pth is written
        if '.last.pth' in getattr(f, 'name', ''):
            signal.raise_signal(signal.SIGINT)
        real_save(obj, f)
    monkeypatch.setattr(torch, 'save', signalled)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # CI may start with SIGINT ignored
    try:
        with pytest.raises(train.Interrupted) as interrupted:
            train.train(epochs=2, checkpoint_dir=tmp_path, **quick)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted.value.resume_from == str(tmp_path / 'last.pth')
    assert checkpoint.load(tmp_path / 'last.pth')['epoch'] == 1


# ---------------------------------------------------------------- the drawn digits

def gz(value):
    return gzip.compress(json.dumps(value).encode())


DIGIT = {'label': 1, 'writer': 'W01', 'repetition': 0, 'strokes': [[[0, 0], [0, 100]]]}
SHIPPED = evaluate.DRAWN_FILE.read_bytes()
BAD_DRAWN = {
    'truncated': (SHIPPED[:len(SHIPPED) // 2], 'not gzipped JSON that can be read'),
    'bit-flipped': (SHIPPED[:200] + bytes([SHIPPED[200] ^ 4]) + SHIPPED[201:], 'not gzipped JSON that can be read'),
    'not-gzip': (b'[1, 2]', 'not gzipped JSON that can be read'),
    'not-json': (gzip.compress(b'hello'), r'not gzipped JSON that can be read \(Expecting value'),
    'dict': (gz({'digits': []}), 'holds a dict, not a list of drawn digits'),
    'empty': (gz([]), 'holds an empty list'),
    'no-writer': (gz([{k: v for k, v in DIGIT.items() if k != 'writer'}]), 'digit 0 is not an object with a label'),
    'bad-strokes': (gz([DIGIT | {'strokes': [[[0]]]}]), 'digit 0 \\(writer W01\\) has strokes that are not'),
    'label-42': (gz([DIGIT | {'label': 42}]), 'digit 0 has the label 42, not a digit 0 to 9'),
    'writer-99': (gz([DIGIT | {'writer': 'W99'}]), "digit 0 has the writer 'W99'"),
    'one-half-only': (gz([DIGIT]), 'holds no digits of the test half'),
}


@pytest.mark.parametrize('name', BAD_DRAWN)
def test_a_bad_drawn_digits_file_is_named_with_what_is_wrong(tmp_path, capsys, name):
    content, message = BAD_DRAWN[name]
    path = tmp_path / f'{name}.json.gz'
    path.write_bytes(content)
    with pytest.raises(evaluate.DrawnDataError, match=message) as error:
        evaluate.load_drawn(path)
    assert str(error.value).startswith(f'{path}: ') and str(error.value).endswith('drawn_digits/README.md')
    assert evaluate.main(['--drawn', str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {path}: ') and '--figure' not in err and err.count('\n') == 1


# ---------------------------------------------------------------- MNIST files, images, saved drawings

def test_a_named_pipe_in_place_of_an_mnist_file_is_refused_not_waited_on(tmp_path):
    raw = tmp_path / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    os.mkfifo(raw / 't10k-labels-idx1-ubyte.gz')
    result = subprocess.run([sys.executable, '-c', 'import sys, data\ntry:\n data.read_verified(sys.argv[1], '
                             '"t10k-labels-idx1-ubyte", download=False)\nexcept data.DataError as e:\n print(e)',
                             str(tmp_path)], capture_output=True, text=True, cwd=files.ROOT, timeout=120)
    assert result.stdout.strip() == (f'{raw / "t10k-labels-idx1-ubyte.gz"} is not a regular file (a named pipe, a '
                                     f'device, ...), not the MNIST file: remove it and copy the file '
                                     f't10k-labels-idx1-ubyte.gz into {raw}/'), result.stderr


def test_a_nan_pixel_in_a_float_tiff_is_background(tmp_path):
    from preprocess import strokes_to_mnist, to_mnist
    image = np.kron(strokes_to_mnist(SEVEN).astype(np.float32) / 255, np.ones((4, 4), dtype=np.float32))
    clean = to_mnist(Image.fromarray(image, 'F'))
    image[0, 0] = image[50, 3] = np.nan
    Image.fromarray(image, 'F').save(tmp_path / 'seven.tif')
    assert np.array_equal(to_mnist(tmp_path / 'seven.tif'), clean)
    assert np.array_equal(to_mnist(image), to_mnist(np.nan_to_num(image)))


def test_a_full_disk_while_saving_a_drawing_loses_and_glues_nothing(tmp_path, monkeypatch):
    folder = tmp_path / 'mine'
    my_digits.save_drawing(SEVEN, 7, 20, folder)
    before = (folder / my_digits.LABELS).read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(my_digits.MyDigitsError, match=f'cannot save the drawing in {folder} .*No space left on device'):
        my_digits.save_drawing(SEVEN, 1, 20, folder)
    monkeypatch.undo()
    assert (folder / my_digits.LABELS).read_bytes() == before and len(list(folder.glob('*.png'))) == 1
    assert not list(folder.glob('.*.tmp'))
    assert my_digits.save_drawing(SEVEN, 3, 20, folder) == 2
    assert list(my_digits.load_drawings(folder)[1]) == [7, 3]


def test_a_file_where_the_drawings_folder_should_be_is_named(tmp_path):
    (tmp_path / 'mine').write_text('not a folder')
    with pytest.raises(my_digits.MyDigitsError, match=r'\(a file stands where a folder of it should be\); move or rename'):
        my_digits.save_drawing(SEVEN, 7, 20, tmp_path / 'mine')


def test_half_lines_left_by_an_old_interrupted_save_are_skipped_and_said(tmp_path, capsys):
    folder = tmp_path / 'mine'
    for label in (1, 2, 3):
        my_digits.save_drawing(SEVEN, label, 20, folder)
    first, second, third = (folder / my_digits.LABELS).read_text().splitlines()
    (folder / my_digits.LABELS).write_text(f'{first}\n{second[:40]}{third}\n{second[:25]}')
    assert list(my_digits.load_drawings(folder)[1]) == [1, 3]
    err = capsys.readouterr().err.splitlines()
    assert err == [f'note: {folder / my_digits.LABELS} line 2: half a line left by an interrupted save, then a whole '
                   f'one: the half is skipped',
                   f'note: {folder / my_digits.LABELS} line 3: half a line left by an interrupted save: skipped']


# ---------------------------------------------------------------- what predict says

def test_the_cli_prints_the_verdict(tmp_path, capsys):
    strip = Image.new('L', (300, 100), 255)
    strip.paste(0, (20, 40, 280, 60))  # a wide bar: read as a 1 by the network, but not one digit
    strip.save(tmp_path / 'strip.png')
    assert predict.main(['docs/sample_digit.png', str(tmp_path / 'strip.png'), '--top', '2']) == 0
    sample, wide = capsys.readouterr().out.splitlines()
    assert sample.startswith('docs/sample_digit.png: 3 (') and ', sure), ' in sample
    assert wide.startswith(f'{tmp_path / "strip.png"}: not a digit (') and '; ' in wide
    probabilities = [0.0] * 10
    probabilities[2], probabilities[8] = 0.55, 0.45
    unsure = predict.Prediction(2, 0.55, probabilities, None, 8, -3.0, predict.UNSURE)
    assert predict.shown(unsure) == '2 (55.0%, unsure)' and predict.shown(unsure, 2) == '2 (55.0%, unsure), 8 (45.0%)'
    other = predict.Prediction(2, 0.55, probabilities, None, 8, -3.0, predict.NOT_A_DIGIT)
    assert predict.shown(other) == 'not a digit (2, 55.0%)' and predict.shown(other, 2) == 'not a digit (2, 55.0%; 8, 45.0%)'


def test_an_empty_checkpoint_among_the_runs_does_not_stop_the_default_model(tmp_path, monkeypatch, capsys):
    (tmp_path / 'empty.pth').write_bytes(b'')
    monkeypatch.setattr(predict, 'CHECKPOINT_DIRS', (files.SHIPPED_DIR, tmp_path))
    assert predict.main(['docs/sample_digit.png']) == 0
    assert capsys.readouterr().err == (f'note: checkpoint {tmp_path / "empty.pth"} cannot be read (EOFError): it is '
                                       f'corrupt or not a checkpoint of this project (skipped: move or delete that file)\n')
