"""The drawing app in a real window: an X server (Xvfb), real mouse and key events (xdotool), and the
prediction the window shows (the app's --echo prints each one as it is put on screen).

    python tests/test_app.py docs/app_screenshot.png    # retake the README's screenshot

Needs `xvfb` and `xdotool` (apt). Without them the tests skip locally and fail in CI (CI set).
"""
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import preprocess
from support import DIGITS, SCRIBBLE, png_header, resized

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / 'test_mnist_tkinter.py'
TITLE = 'MNIST digit recogniser'

CONFIDENT = re.compile(r'shown: \d (\d+\.\d)%')  # a sure single digit, as the app's --echo prints it


def twelve():
    """ "12": a 1 and a 2 side by side, each 110 px tall."""
    return resized(DIGITS[1], 110, centre=(80, 140)) + resized(DIGITS[2], 110, centre=(200, 140))


def require(*tools):
    missing = [tool for tool in tools if not shutil.which(tool)]
    try:
        import tkinter  # noqa: F401
    except ModuleNotFoundError:
        missing.append('tkinter (python3-tk)')
    if missing:
        message = f'the GUI test needs {", ".join(missing)}: apt-get install xvfb xdotool'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)


def start_xvfb():
    """An X server on a display number it picks itself (-displayfd), so parallel runs never clash."""
    read, write = os.pipe()
    server = subprocess.Popen(['Xvfb', '-displayfd', str(write), '-screen', '0', '1024x768x24', '-nolisten', 'tcp'],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        server.kill()
        raise RuntimeError('Xvfb did not start')
    return server, f':{number}'


def interpolate(stroke, step=6):
    """The points a mouse passes through along a polyline, about `step` pixels apart."""
    points = [stroke[0]]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        n = max(1, round(max(abs(x1 - x0), abs(y1 - y0)) / step))
        points += [(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)) for i in range(1, n + 1)]
    return points


class App:
    """The app as a subprocess on `display`; its --echo lines are collected by a thread."""

    def __init__(self, display, *args):
        self.env = {**os.environ, 'DISPLAY': display}
        self.process = subprocess.Popen([sys.executable, str(APP), '--echo', *args], cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line.strip()) for line in self.process.stdout],
                         daemon=True).start()
        ready = self.next_line(timeout=60)
        while ready.startswith('shown:'):
            ready = self.next_line(timeout=60)
        match = re.fullmatch(r'ready: canvas at (\d+),(\d+)', ready)
        assert match, f'unexpected first output {ready!r}; stderr: {self.stderr()}'
        self.origin = int(match[1]), int(match[2])

    def next_line(self, timeout=10):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'the app printed nothing for {timeout}s; stderr: {self.stderr()}') from None

    def drain(self, quiet=0.6):
        """Every line printed until the app has been quiet for `quiet` seconds."""
        lines = []
        while True:
            try:
                lines.append(self.lines.get(timeout=quiet))
            except queue.Empty:
                return lines

    def xdotool(self, *args):
        subprocess.run(['xdotool', *map(str, args)], env=self.env, check=True, timeout=60)

    def moves(self, stroke):
        ox, oy = self.origin
        return [arg for x, y in interpolate(stroke) for arg in ('mousemove', ox + x, oy + y, 'sleep', 0.01)]

    def trace(self, strokes):
        """Press, drag and release along each stroke, one straight after the other; returns every line shown."""
        for stroke in strokes:
            moves = self.moves(stroke)
            self.xdotool(*moves[:3], 'mousedown', 1, *moves[3:], 'mouseup', 1)
        return self.drain()

    def draw(self, strokes):
        """The last prediction shown after drawing `strokes`: the verdict."""
        return self.trace(strokes)[-1]

    def key(self, name):
        self.xdotool('key', name)
        return self.drain()[-1]

    def stderr(self):
        if self.process.poll() is None:
            return '(still running)'
        return self.process.stderr.read()

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        return self.process.stderr.read()


@pytest.fixture(scope='module')
def display():
    require('Xvfb', 'xdotool')
    server, name = start_xvfb()
    yield name
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope='module')
def app(display):
    app = App(display)
    yield app
    assert 'Traceback' not in app.close()


def test_a_click_without_a_drag_is_harmless(display):
    app = App(display)
    try:
        app.xdotool('mousemove', app.origin[0] + 140, app.origin[1] + 140, 'click', 1)  # a click with no drag
        lines = app.drain()
    finally:
        stderr = app.close()
    assert lines and all(line.startswith('shown:') for line in lines)
    assert lines[-1] == 'shown: draw bigger'  # a hint, not a guess
    assert 'Traceback' not in stderr and stderr == ''


@pytest.mark.parametrize('digit', DIGITS)
def test_drawn_digit_is_recognised(app, digit):
    assert app.key('Escape') == 'shown: nothing'
    assert re.fullmatch(rf'shown: {digit} \d+\.\d%', app.draw(DIGITS[digit]))


@pytest.mark.parametrize('digit', [2, 3, 5])
def test_small_digit_with_the_default_brush_is_read(app, digit):
    """30 px tall with the 20-px brush: on screen a blob, but the strokes keep the shape."""
    assert app.key('Escape') == 'shown: nothing'
    assert re.fullmatch(rf'shown: {digit} \d+\.\d%', app.draw(resized(DIGITS[digit], 30)))


def test_tiny_scribble_gets_the_draw_bigger_hint(app):
    app.key('Escape')
    assert app.draw([[(140, 140), (146, 150), (150, 142)]]) == 'shown: draw bigger'


def test_prediction_updates_while_drawing_and_c_clears(app):
    app.key('c')
    moves = app.moves(DIGITS[7][0])
    app.xdotool(*moves[:3], 'mousedown', 1, *moves[3:])  # the button is still down
    during = app.drain(quiet=0.5)
    assert during and set(during) == {'shown: not sure'}
    app.xdotool('mouseup', 1)
    assert app.drain()[-1].startswith('shown: 7 ')
    assert app.key('c') == 'shown: nothing'


def test_between_strokes_no_digit_is_shown_until_the_pen_rests(app):
    """The "1" of "12" alone is a sure 1: drawn straight on to the "2", nothing but "not sure" shows until the
    pen has rested, then the verdict: the number."""
    app.key('c')
    lines = app.trace(twelve())
    assert set(lines[:-1]) == {'shown: not sure'}, lines
    assert re.fullmatch(r'shown: 12 \d+\.\d%', lines[-1]), lines


def written(number, height=110, step=120):
    """A number's digits (DIGITS) written left to right on the writing area."""
    return [stroke for i, d in enumerate(number) for stroke in resized(DIGITS[int(d)], height, (80 + step * i, 140))]


@pytest.mark.parametrize('number', ['2026', '12'])
def test_a_written_number_is_read_whole(app, number):
    app.key('Escape')
    assert re.fullmatch(rf'shown: {number} \d+\.\d%', app.draw(written(number))), number


@pytest.mark.parametrize('what', ['click', 'scribble'])
def test_what_is_not_one_digit_never_shows_a_confident_digit(app, what):
    """The target: a click and a scribble never end on a single digit shown 80% or more sure."""
    app.key('Escape')
    if what == 'click':
        app.xdotool('mousemove', app.origin[0] + 140, app.origin[1] + 140, 'click', 1)
        shown = app.drain()[-1]
    else:
        shown = app.draw(SCRIBBLE)
    confident = CONFIDENT.fullmatch(shown)
    assert not (confident and float(confident[1]) >= 80), shown
    assert re.fullmatch(r'shown: (draw bigger|unsure \d or \d|not a digit)', shown), shown


def test_open_image_at_start(display):
    app = App(display, 'docs/sample_digit.png')
    try:
        lines = app.drain()
    finally:
        stderr = app.close()
    assert re.fullmatch(r'shown: 3 \d+\.\d%', lines[-1]) and stderr == ''


@pytest.mark.parametrize('name', ['huge.png', 'folder.png', 'notes.png'])
def test_an_image_it_cannot_read_is_a_dialog_not_a_traceback(display, tmp_path, name):
    """Too large for Pillow (DecompressionBombError), a folder, not an image at all."""
    (tmp_path / 'huge.png').write_bytes(png_header(20_000, 20_000))
    (tmp_path / 'folder.png').mkdir()
    (tmp_path / 'notes.png').write_text('not an image')
    app = App(display, tmp_path / name)
    try:
        windows = subprocess.run(['xdotool', 'search', '--sync', '--name', 'Cannot classify this image'],
                                 env=app.env, capture_output=True, text=True, timeout=30).stdout
    except subprocess.TimeoutExpired:
        windows = ''
    finally:
        stderr = app.close()
    assert windows.strip(), f'no error dialog appeared; stderr: {stderr}'
    assert 'Traceback' not in stderr and stderr == '', stderr


def test_missing_checkpoint_is_a_friendly_message_not_a_traceback(display, tmp_path):
    app = App(display, '--checkpoint', tmp_path / 'none.pth')
    try:
        assert app.draw(DIGITS[7]) == 'shown: nothing'  # no model: drawing works, no prediction, no error
    finally:
        stderr = app.close()
    assert stderr.startswith(f'error: checkpoint {tmp_path / "none.pth"} does not exist; train one with '
                             f'`python train.py`') and 'Traceback' not in stderr


# ---------------------------------------------------------------- the app in this process

@pytest.fixture(scope='module')
def own_display():
    """An X server of its own: no other window (the subprocess apps) covers the one the screen is read from."""
    require('Xvfb')
    server, name = start_xvfb()
    yield name
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def window(own_display, tmp_path):
    """The app in this process on its own X server, fed Tk events directly, with what it shows recorded;
    "Wrong? It was..." saves in tmp_path/my_digits."""
    import tkinter as tk
    sys.path.insert(0, str(ROOT))
    import predict
    from test_mnist_tkinter import DigitApp
    root = tk.Tk(screenName=own_display)
    app = DigitApp(root, predict.load_model(), my_digits_folder=tmp_path / 'my_digits')
    root.wait_visibility(app.canvas)
    app.shown = []
    show = app.show
    app.show = lambda prediction, **options: (app.shown.append(prediction), show(prediction, **options))
    yield app
    root.destroy()


def draw_in(app, strokes, widget=None):
    """Press, drag and release along each stroke, as Tk events to `widget` (the canvas) in its own
    pixels; the points the mouse passed through."""
    widget = widget or app.canvas
    passed = []
    for stroke in strokes:
        points = interpolate(stroke)
        widget.event_generate('<ButtonPress-1>', x=points[0][0], y=points[0][1])
        for x, y in points[1:]:
            widget.event_generate('<B1-Motion>', x=x, y=y)
        widget.event_generate('<ButtonRelease-1>', x=points[-1][0], y=points[-1][1])
        passed.append(points)
    app.root.update()
    return passed


@pytest.mark.parametrize('digit', [2, 3, 5])
def test_app_reads_its_recorded_strokes_as_the_benchmark_does(window, digit):
    """60 px tall with the thickest brush: the app records every point and classifies exactly
    preprocess.strokes_to_mnist of them, the function evaluate.py --drawn reads the drawn digits with."""
    import predict
    window.brush.set(preprocess.BRUSH[1])
    passed = draw_in(window, resized(DIGITS[digit], 60))
    assert window.strokes == passed
    shown = window.shown[-1]
    assert np.array_equal(shown.model_input, preprocess.strokes_to_mnist(passed)) and shown.digit == digit


def test_screen_shows_what_draw_strokes_draws(window, own_display):
    """The benchmark's image of a drawing (preprocess.draw_strokes) is what the canvas shows, brush included."""
    import predict
    from PIL import ImageGrab
    window.brush.set(30)
    passed = draw_in(window, DIGITS[4])
    x, y = window.canvas.winfo_rootx(), window.canvas.winfo_rooty()
    screen = np.asarray(ImageGrab.grab(xdisplay=own_display).crop((x, y, x + 280, y + 280)).convert('L')) > 128
    drawn = np.asarray(preprocess.draw_strokes(passed, brush=30)) > 128
    assert (screen & drawn).sum() / (screen | drawn).sum() > 0.93  # Tk and PIL differ only at the edges


def test_wrong_it_was_saves_the_drawing_with_its_label(window, tmp_path):
    """The button opens the ten digits; a click (or a key) saves the PNG the canvas shows and one JSON line."""
    import json
    from PIL import Image
    draw_in(window, DIGITS[7])
    window.teach_button.invoke()
    window.label_buttons[1].invoke()  # "it was a 1"
    window.clear()
    passed = draw_in(window, DIGITS[7])
    window.teach_button.invoke()
    window.label_dialog.focus_force()
    window.root.update()
    window.label_dialog.event_generate('<Key>', keysym='7')
    window.root.update()
    folder = tmp_path / 'my_digits'
    lines = [json.loads(line) for line in (folder / 'labels.jsonl').read_text().splitlines()]
    assert [line['label'] for line in lines] == [1, 7] and not window.label_dialog.winfo_exists()
    assert lines[1]['strokes'] == [[list(p) for p in stroke] for stroke in passed] and lines[1]['brush'] == preprocess.BRUSH[2]
    png = np.asarray(Image.open(folder / lines[1]['file']))
    assert np.array_equal(png, np.asarray(preprocess.draw_strokes(passed)))
    assert window.status.cget('text') == f'Saved as a 7: 2 drawings in {folder}'


def settled(app):
    """Wait for the verdict (the pen has rested)."""
    import test_mnist_tkinter
    time.sleep(test_mnist_tkinter.SETTLE_MS / 1000 + 0.1)
    app.root.update()


def type_return(app):
    app.label_entry.focus_force()
    app.root.update()
    app.label_entry.event_generate('<Return>')
    app.root.update()


def test_wrong_it_was_saves_each_digit_of_a_number(window, tmp_path):
    """For a number the dialog takes the whole number typed; each digit's strokes are saved under its digit,
    the drawing once, whatever is clicked again."""
    import json
    import my_digits
    strokes = written('47')
    draw_in(window, strokes)
    settled(window)
    window.teach_button.invoke()
    dialog = window.label_dialog
    window.teach_button.invoke()  # a second click: the same window, not a second one
    assert window.label_dialog is dialog
    window.label_entry.insert(0, '471')
    type_return(window)
    assert dialog.winfo_exists()  # three digits for two: it says so and waits
    window.label_entry.delete(0, 'end')
    window.label_entry.insert(0, '47')
    type_return(window)
    folder = tmp_path / 'my_digits'
    lines = [json.loads(line) for line in (folder / 'labels.jsonl').read_text().splitlines()]
    assert not dialog.winfo_exists() and [line['label'] for line in lines] == [4, 7]
    assert [len(line['strokes']) for line in lines] == [2, 1]
    assert lines[0]['strokes'] == [[list(p) for p in stroke] for stroke in window.strokes[:2]]
    images, labels = my_digits.load_drawings(folder)   # what --extra-data reads
    assert labels.tolist() == [4, 7] and images.shape == (2, 28, 28)
    window.teach_button.invoke()  # the same drawing again: not saved twice
    assert len((folder / 'labels.jsonl').read_text().splitlines()) == 2
    assert window.status.cget('text').startswith('This drawing is saved already')


def test_the_chart_names_which_digit_of_a_number_it_shows(window):
    """The least sure digit's place in the number ("2ND DIGIT"), never a bare number a reader takes for a digit."""
    from test_mnist_tkinter import ordinal
    draw_in(window, written('2026'))
    settled(window)
    weakest = min(range(4), key=lambda i: window.reading.digits[i].confidence)
    assert window.chart_heading.cget('text') == f'PROBABILITIES, {ordinal(weakest + 1).upper()} DIGIT (THE LEAST SURE)'
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == \
        ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st']


def test_status_messages_go_with_the_next_stroke_and_a_stroke_off_the_area_is_reported(window):
    window.teach_button.invoke()
    assert window.status.cget('text').startswith('Draw a digit or a number first')
    draw_in(window, [[(700, 100), (700, 200), (700, 300)]])   # runs off the bottom
    assert window.status.cget('text').startswith('The stroke ran off the writing area')
    draw_in(window, DIGITS[1])
    assert window.status.cget('text').startswith('Model ')


def test_the_brush_label_shows_whole_pixels(window):
    window.set_brush('27.4')
    window.root.update()
    assert window.brush.get() == 27 and window.brush_label.cget('text') == '27'


def test_a_folder_that_cannot_be_written_is_an_error_dialog(window, tmp_path, monkeypatch):
    import test_mnist_tkinter
    errors = []
    monkeypatch.setattr(test_mnist_tkinter.messagebox, 'showerror', lambda *args, **kwargs: errors.append(args))
    (tmp_path / 'my_digits').write_text('a file where the folder should be')
    draw_in(window, DIGITS[7])
    window.teach_button.invoke()
    window.label_buttons[7].invoke()
    assert errors and errors[0][0] == 'Cannot save the drawing'
    assert errors[0][1].startswith(f'cannot save the drawing in {tmp_path / "my_digits"} (')


def test_ctrl_z_undoes_the_last_stroke(app):
    """A 4 with a stray stroke: Ctrl+Z removes the stray one and the 4 is read again; then the rest."""
    assert app.key('Escape') == 'shown: nothing'
    assert re.fullmatch(r'shown: 4 \d+\.\d%', app.draw(DIGITS[4]))
    app.draw([[(40, 250), (240, 250)]])
    assert re.fullmatch(r'shown: 4 \d+\.\d%', app.key('ctrl+z'))
    app.key('ctrl+z')
    assert app.key('ctrl+z') == 'shown: nothing'


def test_a_stroke_starting_just_outside_the_canvas_draws_once_it_enters(app):
    """A 1 whose press lands 6 px above the canvas (and ends 6 px below it) is a 1."""
    app.key('Escape')
    assert re.fullmatch(r'shown: 1 \d+\.\d%', app.draw([[(140, -6), (140, 286)]]))


def test_strokes_are_recorded_in_canvas_pixels_whatever_the_window_size(window):
    """Enlarged, the canvas scales with the window, and so does the brush on screen; a stroke that starts
    outside it begins where it enters. The model gets the same points as at the natural size."""
    import predict
    from test_mnist_tkinter import WRITING
    window.root.geometry(f'{window.root.winfo_width() + 420}x{window.root.winfo_height() + 200}')
    window.root.update()
    scale = window.scale
    assert scale == pytest.approx((WRITING[0] + 420) / WRITING[0])
    assert window.canvas.winfo_width() == round(WRITING[0] * scale)
    assert window.canvas.winfo_height() == round(WRITING[1] * scale)
    on_screen = [[(round(x * scale), round(y * scale)) for x, y in stroke] for stroke in DIGITS[3]]
    draw_in(window, on_screen)
    expected = [[(x / scale, y / scale) for x, y in points] for points in map(interpolate, on_screen)]
    assert window.strokes == expected and window.shown[-1].digit == 3
    assert float(window.canvas.itemcget(window.canvas.find_all()[0], 'width')) == preprocess.BRUSH[2] * scale
    window.clear()
    left = window.canvas.master.master  # the card around the canvas: a press there, outside the canvas
    dx, dy = window.canvas.winfo_rootx() - left.winfo_rootx(), window.canvas.winfo_rooty() - left.winfo_rooty()
    draw_in(window, [[(dx + 200, dy - 5), (dx + 200, dy + 100)]], widget=left)
    first = window.strokes[0][0]
    assert len(window.strokes) == 1 and first[1] >= 0 and abs(first[0] - 200 / scale) < 1e-9


@pytest.mark.slow
def test_no_display_is_a_clear_error():
    require()
    env = {k: v for k, v in os.environ.items() if k != 'DISPLAY'}
    result = subprocess.run([sys.executable, str(APP)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith('error: cannot open a window') and 'predict.py' in result.stderr


def screenshot(path):
    """Write a number in the app under Xvfb and save the window as it looks."""
    from PIL import ImageGrab
    server, display = start_xvfb()
    try:
        app = App(display)
        print(app.draw(written('2026')))
        geometry = subprocess.run(['xdotool', 'search', '--name', TITLE, 'getwindowgeometry', '--shell'],
                                  env=app.env, capture_output=True, text=True, check=True).stdout
        g = dict(line.split('=') for line in geometry.split())
        x, y, width, height = (int(g[k]) for k in ('X', 'Y', 'WIDTH', 'HEIGHT'))
        ImageGrab.grab(xdisplay=display).crop((x, y, x + width, y + height)).save(path, optimize=True)
        app.close()
    finally:
        server.terminate()


if __name__ == '__main__':
    screenshot(sys.argv[1] if len(sys.argv) > 1 else 'docs/app_screenshot.png')
