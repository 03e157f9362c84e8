"""Draw a digit with the mouse and watch the from-scratch network read it.

    python test_mnist_tkinter.py
    python test_mnist_tkinter.py --checkpoint model_checkpoints/shipped/mlp.pth
    python test_mnist_tkinter.py docs/sample_digit.png      # start by classifying an image file

The app records the points of each stroke. What the model classifies is those points redrawn at
MNIST's scale with a stroke like MNIST's (preprocess.strokes_to_mnist): whatever the brush, a small
digit keeps its holes, and display scaling never distorts it. The drawn-digits benchmark
(`python evaluate.py --drawn`) reads pen-drawn digits through the same function. Points are recorded in
the canvas's logical 280x280 pixels, so resizing the window changes nothing the model sees.

"Wrong? It was..." saves the drawing with its true label in data/my_digits/ (my_digits.py), which
`python train.py --init-from CHECKPOINT --extra-data data/my_digits` fine-tunes a model on.
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
from predict import NOT_A_DIGIT, SURE, UNSURE, load_model, percent
from preprocess import BRUSH, CANVAS, TooSmallError, open_image

PREVIEW_SCALE = 4      # the 28x28 model input is shown 4x enlarged
THROTTLE_MS = 60       # at most one prediction this often while drawing; always one on release
SETTLE_MS = 400        # the verdict waits this long after the pen lifts: the next stroke of a 4, a 5 or a
                       # crossed 7 starts sooner, and the first strokes alone often read as a sure wrong digit

BACKGROUND, CARD, INK_BG = '#eef0f4', '#ffffff', '#111418'
TEXT, MUTED, ACCENT, BAR, ERROR = '#1d2430', '#6b7485', '#2f6fed', '#d5dae3', '#c0392b'
PALE_ACCENT = '#9fb8ea'  # the two bars of an unsure answer
FONT = 'DejaVu Sans'
ROW, CHART_WIDTH, BAR_LEFT, BAR_LENGTH = 21, 340, 20, 262  # the probability chart, in pixels


class DigitApp:
    def __init__(self, root, model, model_error=None, echo=False, my_digits_folder=my_digits.FOLDER):
        self.root, self.model, self.echo, self.my_digits_folder = root, model, echo, Path(my_digits_folder)
        self.strokes = []  # what gets classified: each stroke's points, in the canvas's logical CANVAS pixels
        self.undo_marks = []  # len(self.strokes) as each press began: Ctrl+Z removes back to the last one
        self.drawing, self.inside, self.shown_file, self.shown_image = False, False, None, None
        self.pending = self.settling = None  # the scheduled live update, and the verdict after the pen rests
        self.scale, self.spare = 1.0, None  # screen pixels per logical canvas pixel: the canvas grows with the window
        root.title('MNIST digit recogniser')
        root.configure(bg=BACKGROUND)
        self.build_styles()
        self.build_layout()
        self.brush.set(BRUSH[2])
        root.update_idletasks()
        root.minsize(root.winfo_reqwidth(), root.winfo_reqheight())  # larger is fine, smaller would crop
        if model:
            self.status.configure(text=f'Model {model.describe()}', foreground=MUTED)
        else:
            self.status.configure(text=model_error, foreground=ERROR)
        self.show(None)
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
        style.configure('TButton', padding=(12, 5))
        style.configure('Card.Horizontal.TScale', background=CARD, troughcolor=BACKGROUND, bordercolor=BAR,
                        lightcolor=CARD, darkcolor=BAR)

    def build_layout(self):
        self.root.columnconfigure(0, weight=1)
        self.root.rowconfigure(0, weight=1)
        outer = ttk.Frame(self.root, padding=16)
        outer.grid(sticky='nsew')
        outer.columnconfigure(0, weight=1)
        outer.rowconfigure(0, weight=1)

        left = ttk.Frame(outer, style='Card.TFrame', padding=14)
        left.grid(row=0, column=0, sticky='nsew')
        heading = ttk.Label(left, text='DRAW A DIGIT', style='Heading.TLabel')
        heading.grid(row=0, column=0, columnspan=3, sticky='w')
        # the square canvas, centred in a holder that takes whatever room the window gives it
        holder = ttk.Frame(left, style='Card.TFrame', width=CANVAS, height=CANVAS)
        holder.grid(row=1, column=0, columnspan=3, sticky='nsew', pady=(8, 12))
        holder.grid_propagate(False)
        left.rowconfigure(1, weight=1)
        self.canvas = tk.Canvas(holder, width=CANVAS, height=CANVAS, bg=INK_BG, highlightthickness=0,
                                cursor='pencil')
        self.canvas.place(relx=0.5, rely=0.5, anchor='center')
        holder.bind('<Configure>', lambda event: self.fit(event.width, event.height))
        for widget in (self.canvas, holder, left, heading):  # a stroke may start just outside the canvas
            widget.bind('<ButtonPress-1>', self.on_press)
            widget.bind('<B1-Motion>', self.on_drag)
            widget.bind('<ButtonRelease-1>', self.on_release)

        ttk.Label(left, text='Brush', style='Card.TLabel').grid(row=2, column=0, sticky='w')
        self.brush = tk.IntVar()
        ttk.Scale(left, from_=BRUSH[0], to=BRUSH[1], variable=self.brush, style='Card.Horizontal.TScale',
                  command=self.set_brush).grid(row=2, column=1, sticky='ew', padx=8)
        ttk.Label(left, textvariable=self.brush, width=3, style='Card.TLabel').grid(row=2, column=2, sticky='e')
        left.columnconfigure(1, weight=1)
        buttons = ttk.Frame(left, style='Card.TFrame')
        buttons.grid(row=3, column=0, columnspan=3, sticky='ew', pady=(12, 0))
        ttk.Button(buttons, text='Clear', command=self.clear).pack(side='left')
        ttk.Button(buttons, text='Open image…', command=self.open_image).pack(side='right')
        teach = ttk.Frame(left, style='Card.TFrame')
        teach.grid(row=4, column=0, columnspan=3, sticky='ew', pady=(8, 0))
        self.teach_button = ttk.Button(teach, text='Wrong? It was…', command=self.ask_label)
        self.teach_button.pack(side='left')
        ttk.Label(teach, text='teach it your\nhandwriting', style='Hint.TLabel').pack(side='left', padx=(8, 0))
        ttk.Label(left, text='Keys: C or Esc clears, Ctrl+Z undoes', style='Hint.TLabel').grid(
            row=5, column=0, columnspan=3, sticky='w', pady=(10, 0))

        right = ttk.Frame(outer, style='Card.TFrame', padding=14)
        right.grid(row=0, column=1, sticky='nsew', padx=(16, 0))
        right.columnconfigure(0, weight=1)
        ttk.Label(right, text='PREDICTION', style='Heading.TLabel').grid(row=0, column=0, sticky='w')
        ttk.Label(right, text='MODEL INPUT 28×28', style='Heading.TLabel').grid(row=0, column=1, sticky='w')
        answer = ttk.Frame(right, style='Card.TFrame')
        answer.grid(row=1, column=0, sticky='nw', pady=(4, 0))
        self.digit = ttk.Label(answer, style='Digit.TLabel')
        self.digit.pack(anchor='w')
        self.confidence = ttk.Label(answer, style='Confidence.TLabel', width=19)  # fixed: the layout never jumps
        self.confidence.pack(anchor='w')
        self.preview = tk.Label(right, bg=INK_BG, bd=0)  # exactly the pixels the model gets, enlarged
        self.preview.grid(row=1, column=1, sticky='ne', pady=(8, 0))

        ttk.Label(right, text='PROBABILITIES', style='Heading.TLabel').grid(row=2, column=0, columnspan=2,
                                                                            sticky='w', pady=(16, 6))
        self.chart = tk.Canvas(right, width=CHART_WIDTH, height=10 * ROW, bg=CARD, highlightthickness=0)
        self.chart.grid(row=3, column=0, columnspan=2, sticky='w')
        self.bars = []
        for d in range(10):
            y = d * ROW + ROW // 2
            self.chart.create_text(6, y, text=str(d), fill=TEXT, font=(FONT, 10, 'bold'))
            self.chart.create_rectangle(BAR_LEFT, y - 6, BAR_LEFT + BAR_LENGTH, y + 6, fill=BACKGROUND, width=0)
            bar = self.chart.create_rectangle(BAR_LEFT, y - 6, BAR_LEFT, y + 6, fill=BAR, width=0)
            label = self.chart.create_text(CHART_WIDTH, y, text='', fill=MUTED, font=(FONT, 9), anchor='e')
            self.bars.append((bar, label))

        footer = ttk.Frame(outer)
        footer.grid(row=1, column=0, columnspan=2, sticky='ew', pady=(10, 0))
        self.status = ttk.Label(footer, style='Status.TLabel', wraplength=640)
        self.status.pack(side='left')

    # ------------------------------------------------------------ drawing

    def on_press(self, event):
        if self.shown_file:  # drawing after opening a file starts a fresh page
            self.clear()
        self.undo_marks.append(len(self.strokes))
        self.drawing, self.inside = True, False
        self.follow(event)

    def on_drag(self, event):
        if self.drawing and self.follow(event) and self.pending is None:
            self.pending = self.root.after(THROTTLE_MS, self.update_prediction, True)

    def on_release(self, event):
        if not self.drawing:
            return
        self.drawing = False
        if self.undo_marks[-1] == len(self.strokes):  # pressed and let go outside the canvas: nothing drawn
            self.undo_marks.pop()
        self.update_prediction(live=True)  # the finished stroke's probabilities now, the verdict once the pen rests
        self.settling = self.root.after(SETTLE_MS, self.update_prediction)

    def follow(self, event):
        """Record where the mouse is, if it is on the canvas: a stroke starts when it enters (the press
        may have been just outside) and ends where it leaves. True if a point was recorded."""
        x = (event.x + event.widget.winfo_rootx() - self.canvas.winfo_rootx()) / self.scale
        y = (event.y + event.widget.winfo_rooty() - self.canvas.winfo_rooty()) / self.scale
        if not (0 <= x <= CANVAS and 0 <= y <= CANVAS):
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
        side = round(CANVAS * self.scale)
        if self.shown_image:
            image = self.shown_image.copy()
            image.thumbnail((side, side))
            self.photo = ImageTk.PhotoImage(image.convert('RGB'))
            self.canvas.create_image(side // 2, side // 2, image=self.photo)
        for points in self.strokes:
            for start, end in zip(points[:1] + points, points):
                self.draw_piece(start, end)

    def fit(self, width, height):
        """Size the canvas for a holder of width x height: a square CANVAS pixels a side at the window's
        first (natural) size, growing as much as the window grows; the drawing and the brush scale with it."""
        if self.spare is None:  # the holder's margin around the canvas at the natural size
            self.spare = max(0, width - CANVAS), max(0, height - CANVAS)
        side = max(1, min(width - self.spare[0], height - self.spare[1]))
        self.canvas.configure(width=side, height=side)
        self.scale = side / CANVAS
        self.redraw()

    def set_brush(self, value):
        """The slider sets the brush of the whole drawing: the canvas always shows preprocess.draw_strokes's image."""
        if self.brush.get() != round(float(value)):
            self.brush.set(round(float(value)))
            self.redraw()

    def undo(self):
        """Ctrl+Z: remove the last stroke (all that one press drew), redraw, read the drawing again."""
        if self.drawing or not self.undo_marks:
            return
        del self.strokes[self.undo_marks.pop():]
        self.redraw()
        self.update_prediction()

    def clear(self):
        self.canvas.delete('all')
        self.strokes, self.undo_marks, self.shown_file, self.shown_image = [], [], None, None
        self.update_prediction()

    # ------------------------------------------------------------ teaching: "Wrong? It was..."

    def ask_label(self):
        """A small window with the ten digits: a click or a key 0-9 saves the drawing under that label."""
        if not self.strokes:
            self.status.configure(text='Draw a digit first, then say which digit it was.', foreground=ERROR)
            return
        dialog = tk.Toplevel(self.root, bg=CARD, padx=14, pady=12)
        dialog.title('Wrong? It was…')
        dialog.transient(self.root)
        dialog.resizable(False, False)
        ttk.Label(dialog, text='Which digit did you draw? (a key 0-9, or Esc)', style='Card.TLabel').grid(
            row=0, column=0, columnspan=10, sticky='w', pady=(0, 8))
        self.label_buttons = []
        for d in range(10):
            button = ttk.Button(dialog, text=str(d), width=2, padding=(4, 4),
                                command=lambda d=d: (dialog.destroy(), self.teach(d)))
            button.grid(row=1, column=d, padx=1)
            self.label_buttons.append(button)
        dialog.bind('<Key>', lambda event: event.char.isdigit() and len(event.char) == 1 and self.label_buttons[
            int(event.char)].invoke())
        dialog.bind('<Escape>', lambda event: dialog.destroy())
        dialog.geometry(f'+{self.teach_button.winfo_rootx()}+{self.teach_button.winfo_rooty() + 36}')
        dialog.focus_force()  # the digit keys go to it at once
        self.label_dialog = dialog

    def teach(self, label):
        """Save the drawing with its true label (my_digits.save_drawing) and say so in the status line."""
        try:
            count = my_digits.save_drawing(self.strokes, label, self.brush.get(), self.my_digits_folder)
        except TooSmallError:
            self.status.configure(text='Too small to learn from: draw the digit bigger.', foreground=ERROR)
            return
        except my_digits.MyDigitsError as e:
            messagebox.showerror('Cannot save the drawing', str(e), parent=self.root)
            return
        where = self.my_digits_folder
        where = where.relative_to(Path.cwd()) if where.is_relative_to(Path.cwd()) else where
        self.status.configure(text=f'Saved as {"an" if label == 8 else "a"} {label}: {count} drawing{"s" * (count != 1)} in {where}',
                              foreground=TEXT)
        if self.echo:
            print(f'saved: {label} ({count} in {where})', flush=True)

    # ------------------------------------------------------------ prediction

    def update_prediction(self, live=False):
        """Read the drawing: `live` while it may still change (the button is down, or the pen has not yet
        rested SETTLE_MS after a stroke), otherwise the verdict."""
        for scheduled in (self.pending, self.settling):
            if scheduled is not None:
                self.root.after_cancel(scheduled)
        self.pending = self.settling = None
        if not self.model or not self.strokes:
            self.show(None)
            return
        try:
            self.show(self.model.predict_strokes(self.strokes), live=live)
        except TooSmallError:  # a click, a dot: no guess, a hint
            self.show(None, too_small=True, live=live)

    def open_image(self, path=None):
        path = path or filedialog.askopenfilename(
            title='Classify an image', filetypes=[('Images', '*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp'),
                                                  ('All files', '*')])
        if not path:
            return
        if not self.model:
            messagebox.showerror('No model loaded', self.status.cget('text'), parent=self.root)
            return
        try:
            image = open_image(path)
            prediction = self.model.predict(image)
        except (OSError, ValueError) as e:   # predict names the file and says what to do; blank is a ValueError
            messagebox.showerror('Cannot classify this image', str(e), parent=self.root)
            return
        self.clear()
        self.shown_file, self.shown_image = path, image
        self.redraw()
        self.show(prediction)

    def show(self, prediction, too_small=False, live=False):
        """Put a Prediction (or None: nothing to read, or a drawing too small to read) on screen as honestly as
        its verdict allows: a sure digit with its calibrated confidence; an unsure one greyed as "2 or 8?" with
        both probabilities; "Not a digit?" greyed with no bar highlighted. While the drawing may still change
        (`live`) the bars move but the verdict is "not sure yet": the first strokes of a 4 or a 5 alone often read
        as a sure wrong digit (`evaluate.py --drawn` counts how often), so a half-drawn digit flashes no guesses."""
        verdict = prediction.verdict if prediction else None
        if live and (prediction or too_small):
            verdict = 'not sure yet'
        highlight = {}
        if prediction is None and verdict is None:
            hint = 'Draw a digit in\nthe black box' if self.model else 'No model loaded\n(see below)'
            if too_small:
                hint = 'Too small to read:\ndraw it bigger'
            self.digit.configure(text='–', foreground=BAR, style='Digit.TLabel')
            self.confidence.configure(text=hint)
            echo = 'draw bigger' if too_small else 'nothing'
        elif verdict == SURE:
            source = ''
            if self.shown_file:
                name = Path(self.shown_file).name
                source = f'in {name}' if len(name) <= 16 else f'in {name[:15]}…'
            self.digit.configure(text=str(prediction.digit), foreground=TEXT, style='Digit.TLabel')
            self.confidence.configure(text=f'{percent(prediction.confidence)} confident\n{source}')
            highlight = {prediction.digit: ACCENT}
            echo = f'{prediction.digit} {prediction.confidence:.1%}'
        elif verdict == UNSURE:
            first, second = prediction.digit, prediction.runner_up
            self.digit.configure(text=f'{first} or {second}?', style='Doubt.TLabel', foreground=MUTED)
            self.confidence.configure(text=f'not sure: {first} {prediction.confidence:.0%},\n'
                                           f'{second} {prediction.probabilities[second]:.0%}')
            highlight = {first: PALE_ACCENT, second: PALE_ACCENT}
            echo = f'unsure {first} or {second}'
        elif verdict == NOT_A_DIGIT:
            self.digit.configure(text='Not a digit?', style='Doubt.TLabel', foreground=MUTED)
            self.confidence.configure(text='this does not look like\none digit')
            echo = 'not a digit'
        else:
            self.digit.configure(text='…', style='Doubt.TLabel', foreground=MUTED)
            self.confidence.configure(text='not sure yet:\nkeep drawing')
            echo = 'not sure'
        probabilities = prediction.probabilities if prediction else [0.0] * 10
        model_input = Image.fromarray(prediction.model_input) if prediction else Image.new('L', (28, 28), 0)
        for d, ((bar, label), p) in enumerate(zip(self.bars, probabilities)):
            x0, y0, _, y1 = self.chart.coords(bar)
            self.chart.coords(bar, x0, y0, x0 + BAR_LENGTH * p, y1)
            self.chart.itemconfigure(bar, fill=highlight.get(d, BAR))
            self.chart.itemconfigure(label, text=percent(p) if prediction else '')
        size = 28 * PREVIEW_SCALE
        self.preview_photo = ImageTk.PhotoImage(model_input.resize((size, size), Image.NEAREST))
        self.preview.configure(image=self.preview_photo)
        if self.echo:
            print(f'shown: {echo}', flush=True)


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
