"""Write a digit or a number with the mouse and watch the from-scratch network read it.

    python test_mnist_tkinter.py
    python test_mnist_tkinter.py --checkpoint model_checkpoints/shipped/mlp.pth
    python test_mnist_tkinter.py docs/sample_digit.png      # start by classifying an image file

The app records the points of each stroke. A number is read as predict.DigitClassifier.read reads it:
the strokes are grouped into digits (each group boxed on the canvas, its reading under it), and each
group is redrawn at MNIST's scale with a stroke like MNIST's (preprocess.strokes_to_mnist): whatever the
brush, a small digit keeps its holes, and display scaling never distorts it. The benchmarks
(`python evaluate.py --drawn`, `--numbers`) read pen-drawn digits through the same functions. Points
are recorded in the writing area's logical pixels (CANVAS high), so resizing the window changes nothing
the model sees.

"Wrong? It was..." saves each digit of the drawing with its true label in data/my_digits/
(my_digits.py), which `python train.py --init-from CHECKPOINT --extra-data data/my_digits` fine-tunes a
model on.
"""
import argparse
import sys
from pathlib import Path

try:
    import tkinter as tk
    from tkinter import filedialog, messagebox, ttk
except ModuleNotFoundError:
    sys.exit('error: this Python has no tkinter. Install it: Debian/Ubuntu `sudo apt install python3-tk`, '
             'Fedora `sudo dnf install python3-tkinter`, macOS the python.org installer or '
             '`brew install python-tk`. Without a window, `python predict.py IMAGE` classifies files.')

import torch
from PIL import Image, ImageTk

import my_digits
from predict import NOT_A_DIGIT, NOT_A_NUMBER, SURE, UNSURE, load_model, percent
from preprocess import BRUSH, CANVAS, TooSmallError, open_image, strokes_to_mnist

WRITING = (3 * CANVAS, CANVAS)  # the writing area in logical pixels: room for about six digits
PREVIEW_SCALE = 3      # each digit's 28x28 model input is shown 3x enlarged
MAX_PREVIEWS = 8       # model inputs shown for a long number
SETTLE_MS = 400        # the verdict waits this long after the pen lifts: the next stroke of a 4, a 5 or a
                       # crossed 7 starts sooner, and the first strokes alone often read as a sure wrong digit

BACKGROUND, CARD, INK_BG = '#eef0f4', '#ffffff', '#111418'
TEXT, MUTED, ACCENT, BAR, ERROR = '#1d2430', '#6b7485', '#2f6fed', '#d5dae3', '#c0392b'
PALE_ACCENT = '#9fb8ea'  # the two bars of an unsure answer
BOX_LINE = '#4a5568'     # the thin box around each digit on the canvas
FONT = 'DejaVu Sans'
ROW, CHART_WIDTH, BAR_LEFT, BAR_LENGTH = 19, 340, 20, 262  # the probability chart, in pixels


class DigitApp:
    def __init__(self, root, model, model_error=None, echo=False, my_digits_folder=my_digits.FOLDER):
        self.root, self.model, self.echo, self.my_digits_folder = root, model, echo, Path(my_digits_folder)
        self.strokes = []  # what gets read: each stroke's points, in the writing area's logical pixels
        self.undo_marks = []  # len(self.strokes) as each press began: Ctrl+Z removes back to the last one
        self.drawing, self.inside, self.shown_file, self.shown_image = False, False, None, None
        self.settling = None  # the verdict, scheduled for when the pen has rested
        self.reading, self.boxed = None, False  # what was read last; whether its digits are boxed on the canvas
        self.saved, self.label_dialog = None, None  # the strokes "Wrong? It was..." saved last; its window
        self.scale, self.spare = 1.0, None  # screen pixels per logical pixel: the canvas grows with the window
        root.title('MNIST digit recogniser')
        root.configure(bg=BACKGROUND)
        self.build_styles()
        self.build_layout()
        self.brush.set(BRUSH[2])
        root.update_idletasks()
        root.minsize(root.winfo_reqwidth(), root.winfo_reqheight())  # larger is fine, smaller would crop
        self.model_line = (f'Model {model.describe()}', MUTED) if model else (model_error, ERROR)
        self.say(*self.model_line)
        self.show_reading(None)
        for key in ('c', 'C', '<Escape>'):
            root.bind(key, lambda event: self.clear())
        for key in ('<Control-z>', '<Control-Z>'):
            root.bind(key, lambda event: self.undo())

    # ------------------------------------------------------------ layout

    def build_styles(self):
        style = ttk.Style(self.root)
        style.theme_use('clam')
        style.configure('.', font=(FONT, 10), background=BACKGROUND, foreground=TEXT)
        style.configure('Card.TFrame', background=CARD)
        style.configure('Card.TLabel', background=CARD, foreground=TEXT)
        style.configure('Heading.TLabel', background=CARD, foreground=MUTED, font=(FONT, 9, 'bold'))
        style.configure('Digit.TLabel', background=CARD, foreground=TEXT, font=(FONT, 64, 'bold'))
        style.configure('Doubt.TLabel', background=CARD, foreground=MUTED, font=(FONT, 18, 'bold'),  # "2 or 8?"
                        padding=(0, 34, 0, 40))  # as tall as a 64-pt digit: the layout never jumps
        style.configure('Confidence.TLabel', background=CARD, foreground=MUTED, font=(FONT, 11))
        style.configure('Status.TLabel', background=BACKGROUND, foreground=MUTED, font=(FONT, 9))
        style.configure('Hint.TLabel', background=CARD, foreground=MUTED, font=(FONT, 9))
        style.configure('Error.TLabel', background=CARD, foreground=ERROR, font=(FONT, 9))
        style.configure('TButton', padding=(12, 5))
        style.configure('Card.Horizontal.TScale', background=CARD, troughcolor=BACKGROUND, bordercolor=BAR,
                        lightcolor=CARD, darkcolor=BAR)

    def build_layout(self):
        """The writing area and its controls above, the reading below, the status line at the bottom."""
        self.root.columnconfigure(0, weight=1)
        self.root.rowconfigure(0, weight=1)
        outer = ttk.Frame(self.root, padding=12)
        outer.grid(sticky='nsew')
        outer.columnconfigure(0, weight=1)
        outer.rowconfigure(0, weight=1)
        top = ttk.Frame(outer, style='Card.TFrame', padding=12)
        top.grid(row=0, column=0, sticky='nsew')
        self.build_writing(top)
        self.build_controls(top)
        bottom = ttk.Frame(outer, style='Card.TFrame', padding=12)
        bottom.grid(row=1, column=0, sticky='ew', pady=(10, 0))
        self.build_reading(bottom)
        self.build_chart(bottom)
        self.status = ttk.Label(outer, style='Status.TLabel', wraplength=760)
        self.status.grid(row=2, column=0, sticky='w', pady=(8, 0))

    def build_writing(self, card):
        heading = ttk.Label(card, text='WRITE A DIGIT OR A NUMBER', style='Heading.TLabel')
        heading.grid(row=0, column=0, columnspan=2, sticky='w')
        ttk.Label(card, text='"Wrong? It was…" teaches it your handwriting.   Keys: C or Esc clears, Ctrl+Z '
                             'undoes', style='Hint.TLabel').grid(row=0, column=2, sticky='e')
        # the writing area, centred in a holder that takes whatever room the window gives it
        holder = ttk.Frame(card, style='Card.TFrame', width=WRITING[0], height=WRITING[1])
        holder.grid(row=1, column=0, columnspan=3, sticky='nsew', pady=(6, 10))
        holder.grid_propagate(False)
        card.rowconfigure(1, weight=1)
        card.columnconfigure(1, weight=1)
        self.canvas = tk.Canvas(holder, width=WRITING[0], height=WRITING[1], bg=INK_BG, highlightthickness=0,
                                cursor='pencil')
        self.canvas.place(relx=0.5, rely=0.5, anchor='center')
        holder.bind('<Configure>', lambda event: self.fit(event.width, event.height))
        for widget in (self.canvas, holder, card, heading):  # a stroke may start just outside the canvas
            widget.bind('<ButtonPress-1>', self.on_press)
            widget.bind('<B1-Motion>', self.on_drag)
            widget.bind('<ButtonRelease-1>', self.on_release)

    def build_controls(self, card):
        """One row under the writing area: Clear, "Wrong? It was...", the brush, "Open image..."."""
        row = ttk.Frame(card, style='Card.TFrame')
        row.grid(row=2, column=0, columnspan=3, sticky='ew')
        row.columnconfigure(3, weight=1)
        ttk.Button(row, text='Clear', command=self.clear).grid(row=0, column=0)
        self.teach_button = ttk.Button(row, text='Wrong? It was…', command=self.ask_label)
        self.teach_button.grid(row=0, column=1, padx=(8, 16))
        ttk.Label(row, text='Brush', style='Card.TLabel').grid(row=0, column=2)
        self.brush = tk.IntVar()
        ttk.Scale(row, from_=BRUSH[0], to=BRUSH[1], variable=self.brush, style='Card.Horizontal.TScale',
                  command=self.set_brush).grid(row=0, column=3, sticky='ew', padx=8)
        self.brush_label = ttk.Label(row, width=3, style='Card.TLabel')  # whole pixels, never the slider's "27.4"
        self.brush_label.grid(row=0, column=4, padx=(0, 16))
        self.brush.trace_add('write', lambda *_: self.brush_label.configure(text=str(self.brush.get())))
        ttk.Button(row, text='Open image…', command=self.open_image).grid(row=0, column=5)

    def build_reading(self, card):
        ttk.Label(card, text='READING', style='Heading.TLabel').grid(row=0, column=0, sticky='w')
        answer = ttk.Frame(card, style='Card.TFrame')
        answer.grid(row=1, column=0, sticky='nw', pady=(4, 0))
        self.digit = ttk.Label(answer, style='Digit.TLabel')
        self.digit.pack(anchor='w')
        self.confidence = ttk.Label(answer, style='Confidence.TLabel', width=30)  # fixed: the layout never jumps
        self.confidence.pack(anchor='w')
        ttk.Label(card, text='MODEL INPUT 28×28, EACH DIGIT', style='Heading.TLabel').grid(row=2, column=0,
                                                                                         sticky='w', pady=(6, 4))
        self.previews = ttk.Frame(card, style='Card.TFrame', height=28 * PREVIEW_SCALE + 18)
        self.previews.grid(row=3, column=0, sticky='nw')
        card.columnconfigure(0, weight=1)

    def build_chart(self, card):
        self.chart_heading = ttk.Label(card, text='PROBABILITIES', style='Heading.TLabel')
        self.chart_heading.grid(row=0, column=1, sticky='w', padx=(16, 0))
        self.chart = tk.Canvas(card, width=CHART_WIDTH, height=10 * ROW, bg=CARD, highlightthickness=0)
        self.chart.grid(row=1, column=1, rowspan=3, sticky='nw', padx=(16, 0), pady=(6, 0))
        self.bars = []
        for d in range(10):
            y = d * ROW + ROW // 2
            self.chart.create_text(6, y, text=str(d), fill=TEXT, font=(FONT, 10, 'bold'))
            self.chart.create_rectangle(BAR_LEFT, y - 6, BAR_LEFT + BAR_LENGTH, y + 6, fill=BACKGROUND, width=0)
            bar = self.chart.create_rectangle(BAR_LEFT, y - 6, BAR_LEFT, y + 6, fill=BAR, width=0)
            label = self.chart.create_text(CHART_WIDTH, y, text='', fill=MUTED, font=(FONT, 9), anchor='e')
            self.bars.append((bar, label))

    def say(self, text, colour=TEXT):
        self.status.configure(text=text, foreground=colour)

    # ------------------------------------------------------------ drawing

    def on_press(self, event):
        if self.shown_file:  # drawing after opening a file starts a fresh page
            self.clear()
        self.cancel_settling()
        self.say(*self.model_line)  # a new stroke: what the status said about the last one is done with
        self.undo_marks.append(len(self.strokes))
        self.drawing, self.inside, self.boxed = True, False, False
        self.canvas.delete('box')
        self.follow(event)
        if self.strokes:
            self.show_waiting()

    def on_drag(self, event):
        """Every motion event's point is recorded and drawn; nothing is read while the button is down, so a
        busy model never holds the pen up (Tk would merge the motion events that waited, and a loop drawn
        meanwhile would become a straight line)."""
        if self.drawing:
            self.follow(event)

    def on_release(self, event):
        if not self.drawing:
            return
        self.drawing = False
        if self.undo_marks[-1] == len(self.strokes):  # pressed and let go outside the canvas: nothing drawn
            self.undo_marks.pop()
        self.update_prediction(live=True)  # the drawing's reading now, the verdict once the pen rests
        self.settling = self.root.after(SETTLE_MS, self.update_prediction)

    def follow(self, event):
        """Record where the mouse is, if it is on the canvas: a stroke starts when it enters (the press
        may have been just outside) and ends where it leaves, which the status line says. True if a
        point was recorded."""
        x = (event.x + event.widget.winfo_rootx() - self.canvas.winfo_rootx()) / self.scale
        y = (event.y + event.widget.winfo_rooty() - self.canvas.winfo_rooty()) / self.scale
        if not (0 <= x <= WRITING[0] and 0 <= y <= WRITING[1]):
            if self.inside:
                self.say('The stroke ran off the writing area: only the part inside it is read.', ERROR)
            self.inside = False
            return False
        if not self.inside:
            self.strokes.append([])
            self.inside = True
        self.stroke(x, y)
        return True

    def stroke(self, x, y):
        """Extend the current stroke to (x, y): the point is recorded, and the piece from the last point
        drawn on screen round-capped, as preprocess.draw_strokes draws it (a dot when the stroke starts)."""
        points = self.strokes[-1]
        self.draw_piece(points[-1] if points else (x, y), (x, y))
        points.append((x, y))

    def draw_piece(self, start, end):
        s = self.scale
        self.canvas.create_line(start[0] * s, start[1] * s, end[0] * s, end[1] * s, width=self.brush.get() * s,
                                fill='white', capstyle='round', joinstyle='round')

    def redraw(self):
        """Draw the canvas again from the recorded strokes (or the opened image) at the current scale and brush."""
        self.canvas.delete('all')
        width, height = round(WRITING[0] * self.scale), round(WRITING[1] * self.scale)
        if self.shown_image:
            image = self.shown_image.copy()
            image.thumbnail((width, height))
            self.photo = ImageTk.PhotoImage(image.convert('RGB'))
            self.canvas.create_image(width // 2, height // 2, image=self.photo)
        for points in self.strokes:
            for start, end in zip(points[:1] + points, points):
                self.draw_piece(start, end)
        self.draw_boxes()

    def draw_boxes(self):
        """Once the verdict is in, a thin box around each digit's strokes with its reading under it."""
        self.canvas.delete('box')
        if not (self.boxed and self.reading and self.strokes):
            return
        pad = self.brush.get() / 2 + 3
        for (x0, y0, x1, y1), prediction in zip(self.reading.boxes, self.reading.digits):
            left, top, right, bottom = ((x0 - pad) * self.scale, (y0 - pad) * self.scale,
                                        (x1 + pad) * self.scale, (y1 + pad) * self.scale)
            self.canvas.create_rectangle(left, top, right, bottom, outline=BOX_LINE, width=1, tags='box')
            self.canvas.create_text((left + right) / 2, bottom + 9, text=digit_text(prediction), fill=MUTED,
                                    font=(FONT, 9), tags='box')

    def fit(self, width, height):
        """Size the canvas for a holder of width x height: the writing area at the window's first
        (natural) size, growing as much as the window grows; the drawing and the brush scale with it."""
        if self.spare is None:  # the holder's margin around the canvas at the natural size
            self.spare = max(0, width - WRITING[0]), max(0, height - WRITING[1])
        self.scale = max(1e-3, min((width - self.spare[0]) / WRITING[0], (height - self.spare[1]) / WRITING[1]))
        self.canvas.configure(width=round(WRITING[0] * self.scale), height=round(WRITING[1] * self.scale))
        self.redraw()

    def set_brush(self, value):
        """The slider sets the brush of the whole drawing: the canvas always shows preprocess.draw_strokes's image."""
        if self.brush.get() != round(float(value)) or float(value) != round(float(value)):
            self.brush.set(round(float(value)))
            self.redraw()

    def undo(self):
        """Ctrl+Z: remove the last stroke (all that one press drew), redraw, read the drawing again."""
        if self.drawing or not self.undo_marks:
            return
        del self.strokes[self.undo_marks.pop():]
        self.boxed = False
        self.redraw()
        self.update_prediction()

    def clear(self):
        self.canvas.delete('all')
        self.strokes, self.undo_marks, self.shown_file, self.shown_image = [], [], None, None
        self.reading, self.boxed, self.saved = None, False, None
        self.update_prediction()

    # ------------------------------------------------------------ teaching: "Wrong? It was..."

    def ask_label(self):
        """A small window: for one digit the ten digits (a click or a key 0-9 saves the drawing under that
        label); for a number a field for the whole number (each digit's strokes are saved under its digit).
        One window at a time, and the same drawing is saved once."""
        if self.label_dialog is not None and self.label_dialog.winfo_exists():
            self.label_dialog.focus_force()
            return
        if not self.strokes:
            self.say('Draw a digit or a number first, then say what it was.', ERROR)
            return
        if self.saved == self.strokes:
            self.say('This drawing is saved already: clear it (C) and draw the next one.', ERROR)
            return
        dialog = self.label_dialog = tk.Toplevel(self.root, bg=CARD, padx=14, pady=12)
        dialog.title('Wrong? It was…')
        dialog.transient(self.root)
        dialog.resizable(False, False)
        if self.reading and len(self.reading.digits) > 1:
            self.number_field(dialog)
        else:
            self.digit_buttons(dialog)
        dialog.bind('<Escape>', lambda event: dialog.destroy())
        dialog.geometry(f'+{self.teach_button.winfo_rootx()}+{self.teach_button.winfo_rooty() + 36}')
        dialog.focus_force()  # the keys go to it at once

    def digit_buttons(self, dialog):
        ttk.Label(dialog, text='Which digit did you draw? (a key 0-9, or Esc)', style='Card.TLabel').grid(
            row=0, column=0, columnspan=10, sticky='w', pady=(0, 8))
        self.label_buttons = []
        for d in range(10):
            button = ttk.Button(dialog, text=str(d), width=2, padding=(4, 4),
                                command=lambda d=d: (dialog.destroy(), self.teach(str(d))))
            button.grid(row=1, column=d, padx=1)
            self.label_buttons.append(button)
        dialog.bind('<Key>', lambda event: event.char.isdigit() and len(event.char) == 1 and self.label_buttons[
            int(event.char)].invoke())

    def number_field(self, dialog):
        count = len(self.reading.digits)
        ttk.Label(dialog, text=f'Which number did you write? Type its {count} digits and press Enter (Esc '
                               f'cancels)', style='Card.TLabel').grid(row=0, column=0, columnspan=2, sticky='w')
        self.label_entry = ttk.Entry(dialog, width=12, font=(FONT, 14))
        self.label_entry.grid(row=1, column=0, sticky='w', pady=(8, 0))
        problem = ttk.Label(dialog, style='Error.TLabel')
        problem.grid(row=2, column=0, columnspan=2, sticky='w', pady=(6, 0))

        def save(event=None):
            error = self.teach(self.label_entry.get())
            if error:
                problem.configure(text=error)
            else:
                dialog.destroy()
        ttk.Button(dialog, text='Save', command=save).grid(row=1, column=1, sticky='w', padx=(8, 0), pady=(8, 0))
        self.label_entry.bind('<Return>', save)
        self.label_entry.focus_set()

    def teach(self, typed):
        """Save what was typed as the drawing's truth (my_digits.save_drawing): one digit, the whole drawing;
        a number, each digit's strokes under its digit. Returns what is wrong with `typed`, or None."""
        typed = typed.strip()
        groups = self.reading.groups if self.reading else [list(range(len(self.strokes)))]
        if not (typed.isdigit() and typed.isascii()) or len(typed) not in (1, len(groups)):
            return f'Type the {len(groups)} digits of the number (or one digit for the whole drawing).'
        if len(typed) == 1:
            groups = [list(range(len(self.strokes)))]
        drawings = [([self.strokes[i] for i in group], int(d)) for group, d in zip(groups, typed)]
        try:
            for strokes, label in drawings:
                strokes_to_mnist(strokes)  # every digit big enough to learn from, before any is saved
            for strokes, label in drawings:
                count = my_digits.save_drawing(strokes, label, self.brush.get(), self.my_digits_folder)
        except TooSmallError:
            self.say('Too small to learn from: draw the digits bigger.', ERROR)
            return None
        except my_digits.MyDigitsError as e:
            messagebox.showerror('Cannot save the drawing', str(e), parent=self.root)
            return None
        self.saved = [list(stroke) for stroke in self.strokes]
        where = self.my_digits_folder
        where = where.relative_to(Path.cwd()) if where.is_relative_to(Path.cwd()) else where
        what = f'{"an" if typed == "8" else "a"} {typed}' if len(typed) == 1 else f'{typed}, one drawing a digit'
        self.say(f'Saved as {what}: {count} drawing{"s" * (count != 1)} in {where}', TEXT)
        if self.echo:
            print(f'saved: {typed} ({count} in {where})', flush=True)
        return None

    # ------------------------------------------------------------ reading

    def cancel_settling(self):
        if self.settling is not None:
            self.root.after_cancel(self.settling)
        self.settling = None

    def update_prediction(self, live=False):
        """Read the drawing: `live` while it may still change (the pen has not yet rested SETTLE_MS after a
        stroke), otherwise the verdict, with each digit boxed on the canvas."""
        self.cancel_settling()
        reading, too_small = None, False
        if self.model and self.strokes:
            try:
                reading = self.model.read(self.strokes)
            except TooSmallError:  # a click, a dot: no guess, a hint
                too_small = True
        self.reading, self.boxed = reading, not live
        self.draw_boxes()
        self.show_reading(reading, too_small, live)

    def show_reading(self, reading, too_small=False, live=False):
        """One digit as `show` puts it; a number as `show_number`; each digit's model input below."""
        if reading and len(reading.digits) == 1:
            self.show(reading.digits[0], live=live)
        elif reading:
            self.show_number(reading, live)
        else:
            self.show(None, too_small=too_small, live=live)
        self.show_inputs(reading.digits if reading else [])

    def open_image(self, path=None):
        path = path or filedialog.askopenfilename(
            title='Read an image', filetypes=[('Images', '*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp'),
                                              ('All files', '*')])
        if not path:
            return
        if not self.model:
            messagebox.showerror('No model loaded', self.status.cget('text'), parent=self.root)
            return
        try:
            image = open_image(path)
            reading = self.model.read(image)
        except (OSError, ValueError) as e:   # read names the file and says what to do; blank is a ValueError
            messagebox.showerror('Cannot classify this image', str(e), parent=self.root)
            return
        self.clear()
        self.shown_file, self.shown_image, self.reading = path, image, reading
        self.redraw()
        self.show_reading(reading)

    def source(self):
        """' in name.png' for a reading of an opened file (its name cut to 16 characters), else ''."""
        if not self.shown_file:
            return ''
        name = Path(self.shown_file).name
        return f'in {name}' if len(name) <= 16 else f'in {name[:15]}…'

    def show(self, prediction, too_small=False, live=False):
        """Put a Prediction (or None: nothing to read, or a drawing too small to read) on screen as honestly as
        its verdict allows: a sure digit with its calibrated confidence; an unsure one greyed as "2 or 8?" with
        both probabilities; "Not a digit?" greyed with no bar highlighted. While the drawing may still change
        (`live`) the bars move but the verdict is "not sure yet": the first strokes of a 4 or a 5 alone often read
        as a sure wrong digit (`evaluate.py --drawn` counts how often), so a half-drawn digit flashes no guesses."""
        verdict = prediction.verdict if prediction else None
        highlight = {}
        if live and (prediction or too_small):
            return self.show_waiting(prediction)
        if prediction is None:
            hint = 'Draw a digit or a number\nin the black box' if self.model else 'No model loaded\n(see below)'
            if too_small:
                hint = 'Too small to read:\ndraw it bigger'
            self.put('–', hint, 'draw bigger' if too_small else 'nothing', style='Digit.TLabel', colour=BAR)
        elif verdict == SURE:
            self.put(str(prediction.digit), f'{percent(prediction.confidence)} confident\n{self.source()}',
                     f'{prediction.digit} {prediction.confidence:.1%}', style='Digit.TLabel', colour=TEXT)
            highlight = {prediction.digit: ACCENT}
        elif verdict == UNSURE:
            first, second = prediction.digit, prediction.runner_up
            self.put(f'{first} or {second}?', f'not sure: {first} {prediction.confidence:.0%},\n'
                                              f'{second} {prediction.probabilities[second]:.0%}',
                     f'unsure {first} or {second}')
            highlight = {first: PALE_ACCENT, second: PALE_ACCENT}
        else:
            self.put('Not a digit?', 'this does not look like\none digit', 'not a digit')
        self.show_chart(prediction, highlight)

    def show_waiting(self, prediction=None):
        """While the drawing may still change: its probabilities (if one digit), no verdict yet."""
        self.put('…', 'not sure yet:\nkeep drawing', 'not sure')
        if prediction is not None:
            self.show_chart(prediction, {})

    def show_number(self, reading, live=False):
        """A Reading of several digits: "2026" with its confidence when sure; when not, the digits it is sure
        of with a greyed "?" for each other one, and what that one may be ("2 or 7?"); "Not a number?" when
        no group reads as a digit. The chart shows the least sure digit."""
        if live:
            return self.show_waiting()
        if not reading.digits:   # only marks: dots, dashes
            self.put('Not a number?', 'this does not look like\ndigits', 'not a number')
            return self.show_chart(None, {})
        weakest = min(reading.digits, key=lambda p: p.confidence)
        if reading.verdict == SURE:
            self.put(reading.number, f'{percent(reading.confidence)} confident\n{self.source()}',
                     f'{reading.number} {reading.confidence:.1%}', style='Digit.TLabel', colour=TEXT)
        elif reading.verdict == NOT_A_NUMBER:
            self.put('Not a number?', 'this does not look like\ndigits', 'not a number')
        else:
            shown = ''.join(str(p.digit) if p.verdict == SURE else '?' for p in reading.digits)
            doubts = [f'{p.digit} or {p.runner_up}?' if p.verdict == UNSURE else 'not a digit?'
                      for p in reading.digits if p.verdict != SURE]
            self.put(shown, f'{shown}: {", ".join(doubts)}\nthe number {percent(reading.confidence)} likely',
                     f'unsure {shown}', style='Digit.TLabel', colour=MUTED)
        position = ordinal(reading.digits.index(weakest) + 1).upper()
        self.chart_heading.configure(text=f'PROBABILITIES, {position} DIGIT (THE LEAST SURE)')
        sure = weakest.verdict == SURE
        self.show_chart(weakest, {weakest.digit: ACCENT} if sure else {weakest.digit: PALE_ACCENT,
                                                                      weakest.runner_up: PALE_ACCENT})

    def put(self, text, note, echo, style='Doubt.TLabel', colour=MUTED):
        """The reading's big text, the note under it; `echo` is what --echo prints for it."""
        self.digit.configure(text=text, style=style, foreground=colour)
        self.confidence.configure(text=note)
        if self.echo:
            print(f'shown: {echo}', flush=True)

    def show_chart(self, prediction, highlight):
        """One digit's ten probabilities as bars (all empty for None), those in `highlight` coloured."""
        if not self.reading or len(self.reading.digits) < 2:
            self.chart_heading.configure(text='PROBABILITIES')
        probabilities = prediction.probabilities if prediction else [0.0] * 10
        for d, ((bar, label), p) in enumerate(zip(self.bars, probabilities)):
            x0, y0, _, y1 = self.chart.coords(bar)
            self.chart.coords(bar, x0, y0, x0 + BAR_LENGTH * p, y1)
            self.chart.itemconfigure(bar, fill=highlight.get(d, BAR))
            self.chart.itemconfigure(label, text=percent(p) if prediction else '')

    def show_inputs(self, digits):
        """Each digit's 28x28 model input, exactly the pixels the model got, enlarged, its reading under it
        (an empty one when there is nothing to read)."""
        for child in self.previews.winfo_children():
            child.destroy()
        self.preview_photos = []
        for i, prediction in enumerate(digits[:MAX_PREVIEWS] or [None]):
            image = Image.fromarray(prediction.model_input) if prediction else Image.new('L', (28, 28), 0)
            self.preview_photos.append(ImageTk.PhotoImage(image.resize((28 * PREVIEW_SCALE, 28 * PREVIEW_SCALE), Image.NEAREST)))
            tk.Label(self.previews, image=self.preview_photos[-1], bg=INK_BG, bd=0).grid(row=0, column=i, padx=(0, 6))
            ttk.Label(self.previews, text=digit_text(prediction) if prediction else '', style='Hint.TLabel').grid(
                row=1, column=i)


def digit_text(prediction):
    """A digit's reading in a few characters: "7", "2 or 7?", "?" (not a digit)."""
    if prediction.verdict == SURE:
        return str(prediction.digit)
    if prediction.verdict == UNSURE:
        return f'{prediction.digit} or {prediction.runner_up}?'
    return '?'


def ordinal(n):
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st: which digit of a number, not a digit's value."""
    return f'{n}{"th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', nargs='?', help='an image file to classify at start, as "Open image…" does')
    parser.add_argument('--checkpoint', help='a .pth checkpoint (default: the best in model_checkpoints/ and model_checkpoints/shipped/)')
    parser.add_argument('--echo', action='store_true',
                        help='also print every prediction the window shows to stdout (the GUI test reads it): '
                             '"shown: 7 97.3%%", "unsure 2 or 8", "not a digit", "not sure" (while drawing), '
                             '"nothing", "draw bigger"')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one image at a time: on two busy cores, two threads only wait for each other

    model, model_error = None, None
    try:
        model = load_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        model_error = str(e)
        print(f'error: {e}', file=sys.stderr)
    try:
        root = tk.Tk()
    except tk.TclError as e:
        print(f'error: cannot open a window ({e}). Run it in a desktop session, over `ssh -X`, or under '
              f'Xvfb; `python predict.py IMAGE` classifies image files without a window.', file=sys.stderr)
        return 1
    app = DigitApp(root, model, model_error, echo=args.echo)
    if args.echo:
        root.wait_visibility(app.canvas)
        print(f'ready: canvas at {app.canvas.winfo_rootx()},{app.canvas.winfo_rooty()}', flush=True)
    if args.image:
        root.after_idle(app.open_image, args.image)
    root.mainloop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
