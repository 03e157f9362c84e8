"""Helpers the test files share (plain functions and data; the fixtures are in conftest.py). Test files import
this module and the project, never each other."""
import struct
import zlib

import pytest
import torch

import train

# the ten digits as strokes (polylines) in canvas pixels, drawn the way a person moves the mouse
DIGITS = {
    0: [[(140, 50), (100, 70), (85, 140), (100, 210), (140, 232), (180, 210), (195, 140), (180, 70), (140, 50)]],
    1: [[(132, 70), (150, 52), (146, 140), (142, 228)]],
    2: [[(90, 90), (120, 60), (170, 58), (195, 90), (180, 130), (100, 220), (205, 215)]],
    3: [[(95, 75), (140, 50), (185, 70), (175, 115), (130, 130), (185, 150), (190, 200), (140, 230), (90, 210)]],
    4: [[(150, 50), (86, 160), (206, 160)], [(176, 100), (170, 238)]],
    5: [[(195, 60), (115, 60), (105, 130), (150, 118), (190, 140), (192, 190), (150, 225), (100, 210)]],
    6: [[(180, 50), (130, 90), (100, 160), (110, 215), (155, 225), (185, 190), (165, 150), (120, 150), (105, 180)]],
    7: [[(78, 72), (200, 66), (192, 84), (150, 160), (118, 226)]],
    8: [[(180, 70), (140, 50), (100, 75), (120, 120), (175, 160), (170, 215), (120, 225), (95, 190), (130, 140),
         (175, 95), (180, 70)]],
    9: [[(190, 80), (160, 55), (115, 62), (100, 100), (125, 125), (170, 118), (192, 80), (185, 160), (170, 235)]],
}

# not one digit: a tangled zigzag
SCRIBBLE = [[(90, 120), (190, 100), (100, 150), (200, 140), (95, 190), (185, 170), (120, 90), (160, 210), (110, 110),
             (200, 200)]]


def resized(strokes, height, centre=(140, 140)):
    """A drawing scaled to `height` pixels tall around `centre`, in whole pixels."""
    ys = [y for stroke in strokes for _, y in stroke]
    scale, middle = height / (max(ys) - min(ys)), (max(ys) + min(ys)) / 2
    return [[(round(centre[0] + (x - 140) * scale), round(centre[1] + (y - middle) * scale)) for x, y in stroke]
            for stroke in strokes]


def rel_err(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def check_layer(layer, x, reference, params=()):
    """layer.backward against autograd through `reference(x, *params)` for a random upstream grad."""
    out = layer(x)
    grad_out = torch.randn_like(out)
    grad_in = layer.backward(grad_out)
    xr = x.clone().requires_grad_()
    pr = [p.data.clone().requires_grad_() for p in params]
    ref_out = reference(xr, *pr)
    ref_out.backward(grad_out)
    assert rel_err(out, ref_out.detach()) < 1e-12
    assert rel_err(grad_in, xr.grad) < 1e-6
    for p, r in zip(params, pr):
        assert rel_err(p.grad, r.grad) < 1e-6


def png_header(width, height):
    """A PNG that declares width x height 8-bit grey pixels and holds none: enough for Image.open."""
    def chunk(kind, content):
        return struct.pack('>I', len(content)) + kind + content + struct.pack('>I', zlib.crc32(kind + content))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) + chunk(b'IEND', b'')


def train_interrupted(epoch, **options):
    """Run train.train as Ctrl-C would leave it: KeyboardInterrupt as `epoch` starts training
    (after epoch - 1 was saved)."""
    def interrupt(done, row):
        if done == epoch - 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(callback=interrupt, **options)
