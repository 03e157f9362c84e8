"""MNIST: find, verify (and when possible download) the four IDX files, hold them as tensors.

The files live where torchvision keeps them, `<data_dir>/MNIST/raw/`, gzipped or not. Their
decompressed content is checked against the published MD5s, so a truncated, corrupt or
swapped file is named in a clear error instead of training on garbage.
"""
import gzip
import hashlib
import http.client
import math
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

import files
from files import DATA_DIR
from preprocess import BOX, TooSmallError, normalize, strokes_to_mnist, to_mnist

MIRRORS = ('https://ossci-datasets.s3.amazonaws.com/mnist/', 'http://yann.lecun.com/exdb/mnist/')
DOWNLOAD_TIMEOUT = 15  # seconds a mirror may stay silent before the next is tried

# decompressed name -> (MD5 of the decompressed file, shape of the array it holds)
FILES = {
    'train-images-idx3-ubyte': ('6bbc9ace898e44ae57da46a324031adb', (60000, 28, 28)),
    'train-labels-idx1-ubyte': ('a25bea736e30d166cdddb491f175f624', (60000,)),
    't10k-images-idx3-ubyte': ('2646ac647ad5339dbf082846283269ea', (10000, 28, 28)),
    't10k-labels-idx1-ubyte': ('27ae3e4e09519cfbb04c329615203637', (10000,)),
}
SPLITS = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
          'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
IDX_UBYTE = 0x08  # the only element type MNIST uses
SPLIT_SEED = 0    # the validation split is the same for every run, so runs compare on the same images
FRAME = 2             # pixels of background `augment` puts around an image before warping it
PAIR_MARGIN = 4       # pixels of background `joined_pairs` leaves around a pair before normalising it
PAIR_APART = 0.3      # of its height: the least distance between the left edges of a pair's two digits
MNIST_STROKE = 2.5    # pixels: about the width of an MNIST digit's strokes in its 20-pixel box
INK = 30              # of 255: what `joined_pairs` crops a digit to


class DataError(Exception):
    """A data file is missing or wrong; the message names it and says what to do."""


def raw_dir(data_dir):
    return Path(data_dir) / 'MNIST' / 'raw'


def parse_idx(content, name='IDX data'):
    """Bytes of an IDX file -> uint8 tensor of the shape its header declares."""
    if len(content) < 4:
        raise DataError(f'{name}: {len(content)} bytes is too short for an IDX file')
    zero, dtype, ndim = struct.unpack('>HBB', content[:4])
    if zero != 0 or dtype != IDX_UBYTE or not 1 <= ndim <= 3:
        raise DataError(f'{name}: not an IDX file of unsigned bytes (header {content[:4].hex()})')
    shape = struct.unpack(f'>{ndim}I', content[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + prod(shape)
    if len(content) != expected:
        raise DataError(f'{name}: {len(content)} bytes, but its header declares {expected} '
                        f'(shape {shape}); the file is truncated or corrupt')
    return torch.frombuffer(bytearray(content[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def read_verified(data_dir, name, download=True):
    """Decompressed bytes of one MNIST file, checked against its MD5 (downloaded if missing)."""
    folder = raw_dir(data_dir)
    plain, packed = folder / name, folder / f'{name}.gz'
    try:
        check_folder(folder)
        path = next((p for p in (plain, packed) if p.exists()), None)
        if path is None:
            if not download:
                raise DataError(missing_message(folder, name))
            fetch(packed)
            path = packed
        if not path.is_file():  # a folder, or a named pipe or device, which would block the read forever
            kind = 'a folder' if path.is_dir() else 'not a regular file (a named pipe, a device, ...)'
            raise DataError(f'{path} is {kind}, not the MNIST file: remove it and copy the file '
                            f'{packed.name} into {folder}/')
        stored = path.read_bytes()
    except OSError as e:
        raise DataError(os_error_message(e, folder)) from None
    try:
        content = gzip.decompress(stored) if path == packed else stored
    except (OSError, EOFError, zlib.error) as e:   # a bad gzip header, a cut or a bit-flipped stream
        raise DataError(f'{path}: cannot be read or decompressed ({e}); delete it and copy or '
                        f'download it again') from None
    md5, shape = FILES[name]
    if hashlib.md5(content).hexdigest() != md5:
        hint = ''
        try:
            found = tuple(parse_idx(content, path.name).shape)
            if found != shape:
                hint = f' It holds an array of shape {found}, not {shape}: is it another MNIST file renamed?'
        except DataError as e:
            hint = f' {e}.'
        raise DataError(f'{path}: checksum mismatch (MD5 of its decompressed content is not the '
                        f'published {md5}).{hint} Replace it with the original file.')
    return content


def check_folder(folder):
    """DataError when a file stands where `folder` or one of its parents should be a folder
    (e.g. --data-dir names a file): the files could neither be found nor downloaded there."""
    for path in (folder, *folder.parents):
        if path.exists():   # the nearest part of the path that exists must be a folder
            if not path.is_dir():
                raise DataError(f'{path} is a file, not a folder: MNIST is kept in {folder}/. '
                                f'Pass another --data-dir, or move the file away.')
            return


def os_error_message(e, folder):
    """One line for an error of the file system while finding, reading or writing MNIST files."""
    if isinstance(e, files.WriteError):  # it names the file and the reason
        return f'{e}. Check the disk, or pass another --data-dir.'
    where = e.filename or folder
    if isinstance(e, PermissionError):
        return (f'{where}: permission denied. Make the data folder readable and writable for this '
                f'user (e.g. `chmod -R u+rwX {folder}`), or pass another --data-dir.')
    return f'{where}: {e.strerror or e}. Check the disk, or pass another --data-dir.'


def missing_message(folder, name):
    return (f'{folder / name}(.gz) is missing. Copy the four MNIST files '
            f'({", ".join(f + ".gz" for f in FILES)}) into {folder}/, '
            f'or run with network access to download them.')


def fetch(target):
    """Download one .gz file from the first mirror that answers, atomically: a failed or cut
    download leaves nothing behind. Raises OSError when the folder cannot be written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MIRRORS:
        try:
            with urllib.request.urlopen(mirror + target.name, timeout=DOWNLOAD_TIMEOUT) as response:
                content = response.read()
        except (OSError, http.client.HTTPException) as e:   # URLError, timeouts, a cut connection
            errors.append(f'{mirror}: {e}')
            continue
        files.atomic_write(target, lambda f: f.write(content))
        return
    raise DataError(missing_message(target.parent, target.name[:-3])
                    + ' The download failed: ' + '; '.join(errors))


def load_mnist(data_dir=DATA_DIR, download=True):
    """{'train': (images, labels), 'test': (images, labels)}: uint8 (N, 28, 28), int64 (N,)."""
    out = {}
    for split, (images_name, labels_name) in SPLITS.items():
        images = parse_idx(read_verified(data_dir, images_name, download), images_name)
        labels = parse_idx(read_verified(data_dir, labels_name, download), labels_name)
        out[split] = images, labels.long()
    return out


def extract(data_dir=DATA_DIR, download=True):
    """Write the decompressed files beside the .gz ones, the layout torchvision.datasets.MNIST
    reads offline (the benchmark's baseline and the torchvision comparisons use it)."""
    for name in FILES:
        path = raw_dir(data_dir) / name
        if not path.exists():
            content = read_verified(data_dir, name, download)
            try:
                files.atomic_write(path, lambda f: f.write(content))
            except OSError as e:
                raise DataError(os_error_message(e, raw_dir(data_dir))) from None


def load_splits(data_dir=DATA_DIR, val_size=5000, device='cpu', train_subset=None, download=True):
    """Normalised tensors on `device`: {'train', 'val', 'test'} -> (images, labels).

    The validation images are held out of the 60,000 training images by a fixed seeded
    permutation; the test images are only for reporting. train_subset keeps the first n
    training images after the split (for quick runs)."""
    mnist = load_mnist(data_dir, download)
    images, labels = mnist['train']
    train, val = split_indices(len(labels), val_size)
    if train_subset:
        train = train[:train_subset]
    prepared = {'train': (images[train], labels[train]), 'val': (images[val], labels[val]),
                'test': mnist['test']}
    return {split: (normalize(x).to(device), y.to(device)) for split, (x, y) in prepared.items()}


def split_indices(n, val_size):
    """(train, val) indices of n images: a fixed seeded permutation, the same for every run."""
    if not 0 <= val_size < n:
        raise ValueError(f'val_size must be between 0 and {n - 1}, got {val_size}')
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[val_size:], order[:val_size]


def batches(images, labels, batch_size, shuffle=False):
    """Minibatches sliced from tensors already on the device; shuffle draws from torch's
    global generator, which training seeds at the start of each epoch."""
    n = len(labels)
    if shuffle:
        order = torch.randperm(n, device=labels.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield images.index_select(0, idx), labels.index_select(0, idx)  # 5x faster than [idx]
    else:
        for start in range(0, n, batch_size):
            yield images[start:start + batch_size], labels[start:start + batch_size]


def augment(images, max_shift=2.0, max_rotation=10.0, max_scale=0.1, background=-1.0):
    """A random affine distortion of each image of a batch (N, C, H, W), done on the batch's
    device with tensor ops: a shift of up to max_shift pixels along each axis, a rotation of up
    to max_rotation degrees and a zoom by a factor in [1 - max_scale, 1 + max_scale], about the
    centre, sampled bilinearly; pixels from outside the image are `background` (-1 is black
    after `normalize`). Draws from torch's global generator, which training reseeds each epoch.
    Labels are untouched: image i stays image i.

    The same images (to 1e-5, tested) as torch's affine_grid + grid_sample, kept hand-made
    because those took 1.6-2x as long per batch on a 2-core CPU (batches of 512 and 128,
    torch 2.14), which would add about 20% to an mlp-best training step; most of the time
    went to affine_grid's batched matmul with an inner dimension of 3."""
    n, c, h, w = images.shape
    device, dtype = images.device, images.dtype

    def uniform(*shape, bound):
        return (torch.rand(*shape, device=device, dtype=dtype) * 2 - 1) * bound

    angle = uniform(n, 1, bound=math.radians(max_rotation))
    zoom = 1 + uniform(n, 1, bound=max_scale)
    shift_x, shift_y = uniform(2, n, 1, bound=max_shift)
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    # Output pixel (row, col) reads the source point the inverse transform takes it to. The x
    # and y terms depend on the column or the row alone, so each coordinate map is one
    # broadcast add. Coordinates are those of the image framed by FRAME pixels of background,
    # clamped so that a far-away point and the neighbours interpolation reads beside it are
    # background: 1 pixel into the frame on the near sides, 2 on the far ones (floor, then +1).
    row = torch.arange(h, device=device, dtype=dtype) - (h - 1) / 2 - shift_y   # (n, h)
    col = torch.arange(w, device=device, dtype=dtype) - (w - 1) / 2 - shift_x   # (n, w)
    framed_h, framed_w = h + 2 * FRAME, w + 2 * FRAME
    source_x = (cos * col + ((w - 1) / 2 + FRAME))[:, None, :] + (sin * row)[:, :, None]
    source_y = (cos * row + ((h - 1) / 2 + FRAME))[:, :, None] - (sin * col)[:, None, :]
    source_x.clamp_(FRAME - 1, framed_w - FRAME)
    source_y.clamp_(FRAME - 1, framed_h - FRAME)
    framed = images.new_full((n, c, framed_h, framed_w), background)
    framed[:, :, FRAME:-FRAME, FRAME:-FRAME] = images
    # bilinear interpolation between the four pixels around each source point
    left, top = source_x.long(), source_y.long()   # floor: the coordinates are positive
    top_left = (top * framed_w).add_(left).view(n, 1, -1).expand(n, c, -1)
    framed = framed.view(n, c, -1)
    fx, fy = source_x.frac_()[:, None], source_y.frac_()[:, None]

    def at(offset):  # the pixels `offset` places after the top-left ones: gather from a shifted view
        return framed[:, :, offset:].gather(2, top_left).view(n, c, h, w)

    upper = at(0).lerp_(at(1), fx)
    return upper.lerp_(at(framed_w).lerp_(at(framed_w + 1), fx), fy)


def ink_box(images, threshold=0.0):
    """(left, top, right, bottom) of each image's ink (pixels above `threshold`), float (N,) each,
    in pixel coordinates; an image without ink gets the whole frame."""
    ink = images[:, 0] > threshold
    n, h, w = ink.shape
    rows, cols = ink.any(2), ink.any(1)
    empty = ~rows.any(1)
    top = rows.float().argmax(1)
    bottom = h - 1 - rows.flip(1).float().argmax(1)
    left = cols.float().argmax(1)
    right = w - 1 - cols.flip(1).float().argmax(1)
    box = torch.stack([left, top, right, bottom]).to(images.dtype)
    box[:, empty] = torch.tensor([0.0, 0.0, w - 1, h - 1], dtype=images.dtype, device=images.device)[:, None]
    return box.unbind(0)


def draw_segments(images, start, end, width):
    """Anti-aliased line segments start -> end ((N, 2) pixel x, y), `width` (N,) pixels wide, drawn
    as bright ink into a copy of the images (N, C, H, W) in [-1, 1]."""
    n, c, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=images.dtype),
                            torch.arange(w, device=images.device, dtype=images.dtype), indexing='ij')
    p = torch.stack([xs, ys], -1).view(1, h, w, 2)
    a, d = start.view(n, 1, 1, 2), (end - start).view(n, 1, 1, 2)
    t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    distance = (p - a - t[..., None] * d).norm(dim=-1)                     # (n, h, w)
    ink = (width.view(n, 1, 1) / 2 + 0.5 - distance).clamp(0, 1)
    return torch.maximum(images, (ink * 2 - 1)[:, None])


def add_styles(images, labels, share=0.3):
    """Writing styles MNIST hardly has, drawn on the fly into a share of the images of their
    class: a slash through zeros, a long flag at the top of ones (the continental one), a crossbar
    on sevens, each one anti-aliased stroke 2-3 px wide placed from the image's ink box; and fours
    left open at the top (the stem above the bar erased). Only the chosen images are touched (a few
    percent of a batch), so it costs little. Labels are untouched. Draws from torch's global
    generator (the same number of draws for any labels)."""
    n, _, h, w = images.shape
    picked = torch.rand(n, device=labels.device) < share
    draws = torch.rand(7, n, device=images.device, dtype=images.dtype)
    out = images.clone()
    for digit, style in ((0, slash), (1, continental_flag), (7, crossbar)):
        chosen = torch.nonzero(picked & (labels == digit))[:, 0]
        if len(chosen):
            r = draws[:, chosen]
            start, end = style(images[chosen], *ink_box(images[chosen]), r)
            out[chosen] = draw_segments(images[chosen], start, end, 2 + r[6])
    chosen = torch.nonzero(picked & (labels == 4))[:, 0]
    if len(chosen):
        out[chosen] = open_top(images[chosen], *ink_box(images[chosen]), draws[:, chosen])
    return out


def ink_row_centre(images, y):
    """x of the centre of the ink on row y (N,) of each image: where to attach a stroke."""
    row = images[torch.arange(len(images)), 0, y.round().long().clamp(0, images.shape[-2] - 1)] + 1
    cols = torch.arange(images.shape[-1], device=images.device, dtype=images.dtype)
    return (row * cols).sum(1) / row.sum(1).clamp_min(1e-6)


def slash(images, left, top, right, bottom, r):
    """A zero's slash: from near the lower left to near the upper right of the ink, overshooting a little."""
    wide, tall = right - left + 1, bottom - top + 1
    start = torch.stack([left + (r[0] * 0.35 - 0.1) * wide, bottom + (0.1 - r[1] * 0.35) * tall], 1)
    end = torch.stack([right + (0.1 - r[2] * 0.35) * wide, top + (r[3] * 0.35 - 0.1) * tall], 1)
    return start, end


def continental_flag(images, left, top, right, bottom, r):
    """A continental one's flag: from the top of the stem down to the left, 30-60% of the height long,
    17-52 degrees below the horizontal."""
    angle, length = 0.3 + 0.6 * r[0], (0.3 + 0.3 * r[1]) * (bottom - top + 1)
    x = ink_row_centre(images, top)
    return torch.stack([x, top], 1), torch.stack([x - length * angle.cos(), top + length * angle.sin()], 1)


def crossbar(images, left, top, right, bottom, r):
    """A crossed seven's bar: across the stem 45-65% of the way down, 40-70% as wide as the digit
    (at least 4 px), tilted by up to a pixel either way."""
    y = top + (0.45 + 0.2 * r[0]) * (bottom - top + 1)
    x = ink_row_centre(images, y)
    half, tilt = (0.2 + 0.15 * r[1]) * (right - left + 1).clamp_min(10), r[2] * 2 - 1
    return torch.stack([x - half, y + tilt], 1), torch.stack([x + half, y - tilt], 1)


def open_top(images, left, top, right, bottom, r):
    """A four open at the top: the ink right of 50-65% of the width and above 35-50% of the height
    (the upper part of the stem) erased, leaving the bar and the stem below it."""
    h, w = images.shape[-2:]
    x = left + (0.5 + 0.15 * r[0]) * (right - left + 1)
    y = top + (0.35 + 0.15 * r[1]) * (bottom - top + 1)
    cols = torch.arange(w, device=images.device, dtype=images.dtype)
    rows = torch.arange(h, device=images.device, dtype=images.dtype)
    erase = (cols >= x[:, None])[:, None, :] & (rows < y[:, None])[:, :, None]   # (n, h, w)
    return images.masked_fill(erase[:, None], -1.0)


def non_digits(n, generator=None):
    """n synthetic drawings that are no digit, float32 (n, 1, 28, 28) normalised like `normalize`: for
    outlier exposure (training them towards the uniform distribution teaches a model to be unsure of a
    scribble). Random-walk scribbles, random strokes, coils, zig-zags, hatching and tight blobs, 1-5 of
    them in one drawing, on the app's 280-px canvas and rendered as the app's input is
    (preprocess.strokes_to_mnist). A seed drawn from `generator` (a torch.Generator) drives a numpy rng,
    so a seeded generator gives the same images. About 1 ms an image: build a bank once per run."""
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=generator)))
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        while True:
            drawing = [stroke for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 5]))
                       for stroke in NON_DIGIT_KINDS[rng.integers(len(NON_DIGIT_KINDS))](rng)]
            try:
                images[i] = strokes_to_mnist([[tuple(p) for p in s] for s in drawing])
                break
            except TooSmallError:
                pass
    return normalize(torch.from_numpy(images))


def joined_pairs(images, n, generator=None):
    """n drawings of two digits written touching or overlapping, normalised as one: for outlier exposure,
    so that a group holding two digits (two neighbours joined into one) is judged not a digit instead of
    read as one. `images` are normalised MNIST digits (N, 1, 28, 28); each drawing pastes two of them side
    by side, bottoms level give or take a pixel, overlapping by up to 35% of the narrower one's width or
    nearly touching, but their left edges at least PAIR_APART of the height apart (two 1s side by side are
    two bars, not one thick one); thickens the strokes by what shrinking the pair into MNIST's box takes
    from them, and normalises the pair as `preprocess.to_mnist` does a picture. A seed drawn from
    `generator` drives a numpy rng, as in `non_digits`. About 3 ms a drawing: build a bank once per run."""
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=generator)))
    digits = images[:, 0].add(1).mul(127.5).cpu().numpy()  # back to 0..255 ink on black
    boxes = torch.stack(ink_box(images, INK / 127.5 - 1)).int().T.tolist()  # (left, top, right, bottom)
    crop = lambda j: digits[j][boxes[j][1]:boxes[j][3] + 1, boxes[j][0]:boxes[j][2] + 1]
    drawn = np.empty((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        left, right = (crop(j) for j in rng.integers(len(digits), size=2))
        height = max(left.shape[0], right.shape[0]) + 1
        offset = max(left.shape[1] + round(rng.uniform(-0.35, 0.05) * min(left.shape[1], right.shape[1])),
                     round(PAIR_APART * height))
        canvas = np.zeros((height + PAIR_MARGIN * 2, offset + right.shape[1] + PAIR_MARGIN * 2), dtype=np.float32)
        for image, x, drop in ((left, 0, 0), (right, offset, rng.integers(-1, 2))):
            top = PAIR_MARGIN + height - image.shape[0] - 1 + drop
            area = canvas[top:top + image.shape[0], PAIR_MARGIN + x:PAIR_MARGIN + x + image.shape[1]]
            np.maximum(area, image, out=area)
        thicken = 1 + round(MNIST_STROKE * (max(canvas.shape) / BOX - 1))  # keep MNIST's stroke width once shrunk
        drawn[i] = to_mnist(ndimage.grey_dilation(canvas, size=thicken).astype(np.uint8))
    return normalize(torch.from_numpy(drawn))


def random_walk(rng, steps, step, turn, start):
    """One smooth stroke: `steps` steps of `step` px, the heading turning by N(0, turn) each step."""
    point, heading, points = np.asarray(start, dtype=float), rng.uniform(0, 2 * np.pi), []
    for _ in range(steps):
        heading += rng.normal(0, turn)
        point = np.clip(point + step * np.array([np.cos(heading), np.sin(heading)]), 20, 260)
        points.append(point.copy())
    return [points]


def scribble(rng):
    return random_walk(rng, rng.integers(20, 101), rng.uniform(5, 15), rng.uniform(0.3, 1.2), rng.uniform(60, 220, 2))


def random_strokes(rng):
    """At least five points: two points alone would be a line, a plausible 1."""
    while True:
        drawn = [rng.uniform(30, 250, (rng.integers(2, 6), 2)) for _ in range(rng.integers(1, 4))]
        if sum(map(len, drawn)) >= 5:
            return drawn


def coil(rng):
    """Several overlapping turns drifting sideways: never a single clean 0."""
    turns, steps = rng.uniform(2, 5), rng.integers(40, 90)
    t = np.linspace(0, 2 * np.pi * turns, steps)
    radius = rng.uniform(20, 70, 2)
    drift = rng.uniform(15, 40, 2) * rng.choice([-1, 1], 2) / (2 * np.pi)  # px per radian
    centre = rng.uniform(90, 190, 2)
    return [np.stack([centre[0] + radius[0] * np.cos(t) + drift[0] * t,
                      centre[1] + radius[1] * np.sin(t) + drift[1] * t], 1)]


def zigzag(rng):
    teeth, angle = rng.integers(4, 12), rng.uniform(0, np.pi)
    along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    length, height = rng.uniform(100, 220), rng.uniform(15, 80)
    offsets = np.linspace(-length / 2, length / 2, teeth)[:, None] * along
    return [rng.uniform(110, 170, 2) + offsets + (np.arange(teeth) % 2 * 2 - 1)[:, None] * height / 2 * across]


def hatching(rng):
    """Dense parallel lines, sometimes crossed by a second set."""
    drawn = []
    for _ in range(rng.integers(1, 3)):
        lines, angle = rng.integers(4, 12), rng.uniform(0, np.pi)
        along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        centre, length = rng.uniform(110, 170, 2), rng.uniform(60, 180)
        for k in np.linspace(-1, 1, lines) * rng.uniform(30, 90):
            drawn.append([centre + k * across - length / 2 * along, centre + k * across + length / 2 * along])
    return drawn


def blob(rng):
    """A tight scribble: many short steps in a small area, ink filling it."""
    return random_walk(rng, rng.integers(60, 150), rng.uniform(3, 8), rng.uniform(1.0, 2.0), rng.uniform(100, 180, 2))


NON_DIGIT_KINDS = (scribble, random_strokes, coil, zigzag, hatching, blob)
