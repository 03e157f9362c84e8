"""The user's own drawings: what the app's "Wrong? It was..." saves and `train.py --extra-data` reads.

A folder (by default data/my_digits/, git-ignored) holds one PNG per drawing, the canvas as it
looked (preprocess.draw_strokes), and labels.jsonl with one JSON line per drawing:

    {"file": "7-20261127-223012-3fa1.png", "label": 7, "strokes": [[[x, y], ...], ...],
     "brush": 20, "saved": "2026-11-27T22:30:12"}

Strokes are in the canvas's logical 280x280 pixels, whatever the window's size. Training reads the
strokes, not the PNG, through preprocess.strokes_to_mnist: exactly the input the app gave the model.
"""
import json
import math
import secrets
import sys
import time
from pathlib import Path

import numpy as np

import files
from files import MY_DIGITS_DIR
from preprocess import draw_strokes, strokes_to_mnist

FOLDER = MY_DIGITS_DIR
LABELS = 'labels.jsonl'


class MyDigitsError(ValueError):
    """A folder of drawings cannot be written or read; the message names it and says what to do."""


def save_drawing(strokes, label, brush, folder=FOLDER):
    """Add a drawing with its true `label` to `folder`: the PNG first (files.atomic_write), then its line
    appended to labels.jsonl (files.append_line: the whole line or nothing, on disk before "saved" is said),
    so a failed save leaves no PNG and never half a line. Returns the number of drawings the folder now lists.
    Raises MyDigitsError when the folder cannot be written, or the drawing is too small to read."""
    if not 0 <= label <= 9:
        raise MyDigitsError(f'label {label}: must be a digit, 0 to 9')
    strokes_to_mnist(strokes)  # TooSmallError (a ValueError) for a click or a dot: nothing to learn from
    folder, now = Path(folder), time.localtime()
    name = f'{label}-{time.strftime("%Y%m%d-%H%M%S", now)}-{secrets.token_hex(2)}.png'
    line = json.dumps({'file': name, 'label': label,
                       'strokes': [[[round(x, 2), round(y, 2)] for x, y in stroke] for stroke in strokes],
                       'brush': brush, 'saved': time.strftime('%Y-%m-%dT%H:%M:%S', now)})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.atomic_write(folder / name, lambda f: draw_strokes(strokes, brush).save(f, 'PNG'))
        try:
            files.append_line(folder / LABELS, line)
        except files.WriteError:
            (folder / name).unlink(missing_ok=True)  # this save's own PNG: unlisted, it would only be clutter
            raise
        with open(folder / LABELS, 'rb') as f:
            return sum(1 for row in f if row.strip())
    except (FileExistsError, NotADirectoryError):
        raise MyDigitsError(f'cannot save the drawing in {folder} (a file stands where a folder of it should '
                            f'be); move or rename that file') from None
    except OSError as e:  # files.WriteError names the file and the reason
        raise MyDigitsError(f'cannot save the drawing in {folder} ({e if isinstance(e, files.WriteError) else files.describe(e)}); '
                            f'make the folder writable (e.g. chmod u+rwX {folder}) or free some disk space') from None


def load_drawings(folder):
    """The drawings listed in folder/labels.jsonl as the model sees them in the app: (images, labels),
    uint8 (N, 28, 28) and int64 (N,) numpy arrays. Raises MyDigitsError naming the file and line of
    anything it cannot use."""
    folder = Path(folder)
    path = folder / LABELS
    if not folder.is_dir():
        raise MyDigitsError(f'{folder}: ' + ('is a file, not a folder' if folder.exists() else 'no such folder')
                            + '; save drawings with "Wrong? It was..." in the app (they go to data/my_digits)')
    if not path.is_file():
        raise MyDigitsError(f'{folder} holds no {LABELS}: it is not a folder of drawings saved by the app '
                            f'("Wrong? It was..." writes data/my_digits/{LABELS})')
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as e:
        raise MyDigitsError(f'{path}: cannot be read ({e})') from None
    lines = text.splitlines()
    images, labels = [], []
    for number, line in enumerate(lines, 1):
        line = unbroken(line, f'{path} line {number}', unfinished=number == len(lines) and not text.endswith('\n'))
        if line and line.strip():
            label, strokes = parse_line(line, f'{path} line {number}')
            try:
                images.append(strokes_to_mnist(strokes))
            except ValueError as e:
                raise MyDigitsError(f'{path} line {number}: {e}; delete that line') from None
            labels.append(label)
    if not labels:
        raise MyDigitsError(f'{path} lists no drawings; save some with "Wrong? It was..." in the app')
    return np.stack(images), np.array(labels, dtype=np.int64)


def unbroken(line, where, unfinished):
    """`line`, or the whole line in it when a save cut short (a crash, a full disk) left half a line: at the
    end of the file (`unfinished`: no end of line) the half is skipped (None); glued in front of the next
    save's line, that line is kept. Each says so on stderr; anything else broken is for parse_line to name."""
    try:
        json.loads(line)
        return line
    except json.JSONDecodeError:
        pass
    start = line.rfind('{"file"')
    if start > 0:
        print(f'note: {where}: half a line left by an interrupted save, then a whole one: the half is skipped',
              file=sys.stderr)
        return line[start:]
    if unfinished:
        print(f'note: {where}: half a line left by an interrupted save: skipped', file=sys.stderr)
        return None
    return line


def parse_line(line, where):
    """(label, strokes) of one line of labels.jsonl; MyDigitsError saying what is wrong at `where`."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as e:
        raise MyDigitsError(f'{where}: not valid JSON ({e.msg}); fix or delete that line') from None
    if not isinstance(entry, dict) or 'label' not in entry or 'strokes' not in entry:
        raise MyDigitsError(f'{where}: expected an object with "label" and "strokes"; fix or delete that line')
    label, strokes = entry['label'], entry['strokes']
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
        raise MyDigitsError(f'{where}: label {label!r} is not a digit 0 to 9; fix or delete that line')
    points_ok = isinstance(strokes, list) and strokes and all(
        isinstance(stroke, list) and stroke and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        and math.isfinite(v) for v in p) for p in stroke)
        for stroke in strokes)
    if not points_ok:
        raise MyDigitsError(f'{where}: "strokes" must be a list of strokes, each a list of [x, y] points; '
                            f'fix or delete that line')
    return label, [[tuple(p) for p in stroke] for stroke in strokes]
