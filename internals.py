"""A look inside the from-scratch network, for the notebook: the source of a method, one training
step traced tensor by tensor, the shapes of a layer's forward and backward pass, the hand-written
gradients of a layer or a whole network checked against central finite differences and against
torch's autograd, how often each ReLU unit fires, and how sure a model was of its mistakes.

Torch's autograd and torch.nn.functional appear here only as the reference to check against;
nn.py itself uses neither.
"""
import inspect
import math
import textwrap

import pandas as pd
import torch
import torch.nn.functional as F

import nn
import predict
from metrics import eval_mode

ZERO_GRADIENT = 1e-9  # a gradient this small is zero up to rounding: the loss does not depend on the tensor

# what each kind of layer computes: its output, the gradients of its parameters, and the gradient it
# passes down (g: the gradient arriving from above, dL/dy; a subclass uses its base class's entry)
FORMULAS = {
    nn.Flatten: {'output': 'reshape (N, 1, 28, 28) -> (N, 784)', 'input': 'reshape back'},
    nn.AsImages: {'output': 'reshape (N, 784) -> (N, 1, 28, 28)', 'input': 'reshape back'},
    nn.Linear: {'output': 'y = x W^T + b', 'weight': 'dW = g^T x', 'bias': 'db = sum of g over the batch',
                'input': 'dx = g W'},
    nn.ReLU: {'output': 'y = max(x, 0)', 'input': 'dx = g * (y > 0): the gradient passes where the unit fired'},
    nn.Conv2d: {'cols': 'im2col: every k x k patch of the padded input as a column',
                'output': 'y = cols^T W_mat + b, W_mat the weight as (k*k*in, out)',
                'weight': 'dW_mat = cols g, g as (N*Ho*Wo, out)', 'bias': 'db = sum of g over batch and pixels',
                'input': 'dx = col2im(g W_mat^T): each patch gradient added back where the patch was'},
    nn.MaxPool2d: {'right_top': '1 where the top right pixel beat the top left one (2 x 2 windows)',
                   'right_bottom': '1 where the bottom right pixel beat the bottom left one',
                   'lower': "1 where the bottom row's winner beat the top row's",
                   'output': 'y = the largest value of each k x k window',
                   'input': 'dx = g at the largest pixel of each window, 0 at the others'},
    nn.BatchNorm: {'normalized': 'xhat = (x - mean) / sqrt(var + eps), per channel over the batch',
                   'inv_std': '1 / sqrt(var + eps), per channel',
                   'output': 'y = weight * xhat + bias',
                   'weight': 'dweight = sum of g * xhat', 'bias': 'dbias = sum of g',
                   'input': 'dx = weight / std * (g - mean(g) - xhat * mean(g * xhat))'},
    nn.Dropout: {'mask': '0 with probability p, else 1 / (1 - p)', 'output': 'y = x * mask',
                 'input': 'dx = g * mask'},
}


def formula(layer, what):
    """FORMULAS' entry `what` for the layer's class or the nearest base class that has one ('' if none)."""
    return next((FORMULAS[c].get(what, '') for c in type(layer).__mro__ if c in FORMULAS), '')


class Source:
    """The source code of functions or methods, shown by Jupyter as a highlighted code block: the
    notebook shows what nn.py runs, never a copy of it."""

    def __init__(self, *objects):
        self.text = '\n'.join(textwrap.dedent(inspect.getsource(o)) for o in objects).rstrip()

    def _repr_markdown_(self):
        return f'```python\n{self.text}\n```'

    def __repr__(self):
        return self.text


def shape(t):
    return tuple(t.shape)


def trace_step(model, criterion, optimizer, x, y):
    """One training step of a Classifier made of Flatten, Linear and ReLU layers, done layer by
    layer exactly as model.logits, model.backward(input_grad=False) and optimizer.step do it.
    Returns a table: every tensor the step computes, its shape, how it is computed and its mean
    absolute value."""
    rows = []

    def add(stage, name, tensor, how):
        rows.append({'pass': stage, 'tensor': name, 'shape': shape(tensor), 'computed as': how,
                     'mean |value|': tensor.abs().mean().item()})

    model.train()
    layers = model.children()[:-1]  # the softmax is not run in training: the loss takes the logits
    add('forward', 'x (images)', x, 'input batch')
    h = x
    for name, layer in layers:
        h = layer.forward(h)
        add('forward', f'{name} output', h, formula(layer, 'output'))
    model.last_pass = 'logits'
    loss = criterion(h, y)
    add('forward', 'loss', loss, 'mean over the batch of -log softmax(logits)[true digit]')

    g = criterion.backward()
    add('backward', 'dL/dlogits', g, '(softmax(logits) - onehot(y)) / N')
    first = next(i for i, (_, layer) in enumerate(layers) if layer.parameters())
    for i in reversed(range(first, len(layers))):
        name, layer = layers[i]
        g = layer.backward(g, input_grad=i > first)
        for pname, p in layer.named_parameters():
            add('backward', f'{name}.{pname}.grad', p.grad, formula(layer, pname))
        if g is not None:
            add('backward', f'dL/d(input of {name})', g, formula(layer, 'input'))
    rows.append({'pass': 'backward', 'tensor': 'dL/d(images)', 'shape': None,
                 'computed as': 'skipped: nothing needs it (input_grad=False)', 'mean |value|': None})

    before = optimizer.data.clone()
    optimizer.step()
    add('Adam', 'm (first moments, all parameters in one flat buffer)', optimizer.exp_avg, 'm = b1 m + (1 - b1) g')
    add('Adam', 'v (second moments)', optimizer.exp_avg_sq, 'v = b2 v + (1 - b2) g^2')
    change = optimizer.data - before
    offset = 0
    for name, p in model.named_parameters():
        add('Adam', f'{name} change', change[offset:offset + p.numel()].view(p.shape),
            '-lr m^ / (sqrt(v^) + eps), m^ and v^ bias-corrected')
        offset += p.numel()
    return pd.DataFrame(rows)


def autograd_layer(layer, x, weight=None, bias=None):
    """What `layer` computes in training mode, written with torch.nn.functional so that autograd can
    differentiate it; a Dropout layer applies the mask its last forward pass drew."""
    if isinstance(layer, nn.Flatten):
        return x.flatten(1)
    if isinstance(layer, nn.AsImages):
        return x.reshape(len(x), 1, 28, 28) if x.dim() < 4 else x
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    if isinstance(layer, nn.ReLU):
        return F.relu(x)
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, weight, bias, stride=layer.stride, padding=layer.padding)
    if isinstance(layer, nn.MaxPool2d):
        return F.max_pool2d(x, layer.kernel_size, layer.stride)
    if isinstance(layer, nn.BatchNorm):
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=layer.eps)
    if isinstance(layer, nn.Dropout):
        mask = layer.saved_for_backward()['mask']
        return x if mask is None else x * mask
    raise TypeError(f'autograd_layer does not know {type(layer).__name__}')


def autograd_logits(model, x, parameters):
    """The logits of a Classifier computed with torch.nn.functional on `parameters` (name ->
    tensor), so that autograd can differentiate them."""
    for name, layer in model.children()[:-1]:
        x = autograd_layer(layer, x, parameters.get(f'{name}.weight'), parameters.get(f'{name}.bias'))
    return x


def finite_differences(values, analytic, loss_now, entries=30, eps=1e-5, seed=0):
    """The analytic gradients against central finite differences, (L(w + eps) - L(w - eps)) / (2 eps),
    for `entries` randomly chosen entries of each tensor in `values` (name -> tensor the loss reads;
    changed in place and restored). One row per tensor: the relative error ||analytic - numeric|| /
    ||numeric|| over the entries (one entry alone can be near zero, where a relative error means
    nothing), or NaN where the loss does not depend on the tensor (both gradients 0 up to rounding:
    a bias just before a batch norm)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name, value in values.items():
        flat = value.view(-1)  # a view: changing an entry changes the tensor the model computes with
        picked = torch.randperm(flat.numel(), generator=generator)[:entries]
        numeric = torch.empty(len(picked), dtype=torch.float64)
        for k, i in enumerate(picked.tolist()):
            kept = flat[i].item()
            flat[i] = kept + eps
            up = loss_now()
            flat[i] = kept - eps
            down = loss_now()
            flat[i] = kept
            numeric[k] = (up - down) / (2 * eps)
        exact = analytic[name].reshape(-1)[picked].cpu()
        zero = max(exact.abs().max().item(), numeric.abs().max().item()) < ZERO_GRADIENT
        rows.append({'tensor': name, 'shape': shape(value), 'entries checked': len(picked),
                     'largest |gradient|': exact.abs().max().item(),
                     'finite differences: relative error':
                         math.nan if zero else ((exact - numeric).norm() / numeric.norm()).item()})
    return rows


def seeded(forward, seed):
    """forward() with torch's generator seeded: every call draws the same dropout mask. The global
    generator's state is restored afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return forward()


def check_layer(layer, x, entries=30, eps=1e-5, seed=0):
    """One layer's backward pass against central finite differences, for its parameters and its input x
    (float64): the loss L = sum(layer(x) * r) with a fixed random r makes dL/dy = r, so that backward(r)
    must return dL/dx and write dL/dW. One row per tensor (see finite_differences)."""
    layer.train()
    r = torch.randn(seeded(lambda: layer(x), seed).shape, dtype=x.dtype,
                    generator=torch.Generator().manual_seed(seed))
    grad_x = layer.backward(r)
    tensors = dict(layer.named_parameters())
    analytic = {name: p.grad.clone() for name, p in tensors.items()} | {'input': grad_x}
    values = {name: p.data for name, p in tensors.items()} | {'input': x}
    rows = finite_differences(values, analytic, lambda: seeded(lambda: (layer(x) * r).sum().item(), seed),
                              entries, eps, seed)
    return pd.DataFrame(rows).set_index('tensor')


def check_gradients(model, criterion, x, y, entries=30, eps=1e-5, seed=0):
    """nn.py's gradients of the loss for every parameter and for the images, against

    - central finite differences for `entries` randomly chosen entries of each tensor
      (finite_differences);
    - torch's autograd on the same weights, every entry: the largest absolute difference.

    The model and the images must be float64: in float32 the finite differences themselves are
    only good to about 1e-3. eps balances the two errors of a central difference: rounding, about
    1e-16 / eps, and truncation, about eps^2. Every forward pass draws the same dropout masks
    (torch seeded with `seed`). Returns one row per tensor."""
    if x.dtype != torch.float64 or any(p.data.dtype != torch.float64 for p in model.parameters()):
        raise ValueError('check gradients in float64: nn.Net(dtype=torch.float64) and x.double()')
    model.train()

    def loss_now():
        return seeded(lambda: criterion(model.logits(x), y), seed)

    loss = loss_now()
    images_grad = model.backward(criterion.backward())
    tensors = dict(model.named_parameters())
    analytic = {name: p.grad.clone() for name, p in tensors.items()} | {'images': images_grad}
    values = {name: p.data for name, p in tensors.items()} | {'images': x}
    rows = finite_differences(values, analytic, lambda: loss_now().item(), entries, eps, seed)

    parameters = {name: p.data.clone().requires_grad_() for name, p in tensors.items()}
    images = x.clone().requires_grad_()
    reference = F.cross_entropy(autograd_logits(model, images, parameters), y,
                                label_smoothing=criterion.label_smoothing)
    reference.backward()
    gradients = {name: t.grad for name, t in parameters.items()} | {'images': images.grad}
    for row in rows:
        row['autograd: largest |difference|'] = (analytic[row['tensor']] - gradients[row['tensor']]).abs().max().item()
    table = pd.DataFrame(rows).set_index('tensor')
    table.attrs['loss'] = (loss.item(), reference.item())
    return table


def layer_shapes(layer, x, seed=0):
    """One training forward and backward pass of `layer` on x, with a random upstream gradient g:
    the shape of every tensor involved (the input, what forward keeps for backward, the output, g,
    the parameter gradients, dL/dx) and how it is computed (FORMULAS)."""
    layer.train()
    y = seeded(lambda: layer(x), seed)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed))
    rows = [('x (input)', x, 'the batch arriving from below')]
    rows += [(f'{name} (kept for backward)', t, formula(layer, name))
             for name, t in layer.saved_for_backward().items() if isinstance(t, torch.Tensor) and t.dim() > 1]
    rows += [('y (output)', y, formula(layer, 'output')), ('g = dL/dy', g, 'arrives from the layer above')]
    grad_x = layer.backward(g)
    rows += [(f'{name}.grad', p.grad, formula(layer, name)) for name, p in layer.named_parameters()]
    rows.append(('dL/dx', grad_x, formula(layer, 'input')))
    return pd.DataFrame([{'tensor': name, 'shape': shape(t), 'computed as': how} for name, t, how in rows]
                        ).set_index('tensor')


def relu_activity(model, images, batch_size=1000):
    """For each ReLU layer, the share of `images` on which each of its units is active (output
    above 0): {layer name: tensor of shape (units,)}. A unit active on no image is dead on them: it
    passes no gradient back, so training cannot revive it with these images."""
    active = {}
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            h = images[start:start + batch_size]
            for name, layer in model.children():
                h = layer(h)
                if isinstance(layer, nn.ReLU):
                    active[name] = active.get(name, 0) + (h > 0).sum(0, dtype=torch.float64)
    return {name: (count / len(images)).float().cpu() for name, count in active.items()}


def unit_summary(activity, rare=0.01):
    """Per ReLU layer: units, how many never fire (dead), fire on fewer than `rare` of the images,
    fire on every image (a unit that is never cut off acts as a linear one), and the mean share of
    images a unit fires on."""
    return pd.DataFrame([{'layer': name, 'units': len(share), 'dead (never active)': int((share == 0).sum()),
                          f'active on < {rare:.0%} of images': int(((share > 0) & (share < rare)).sum()),
                          'active on every image': int((share == 1).sum()),
                          'mean share of images active': share.mean().item()}
                         for name, share in activity.items()]).set_index('layer')


def confident_mistakes(evaluation, above=0.95):
    """How sure a model was when it was wrong, as a sentence: its mistakes, the share of them with a
    confidence above `above`, and the median confidence of a mistake and of a right answer."""
    confidence = evaluation.probabilities.max(1).values
    wrong = evaluation.predictions != evaluation.labels
    if not wrong.any():
        return 'no mistakes'
    return (f'{wrong.sum().item()} mistakes: {(confidence[wrong] > above).float().mean().item():.0%} of them with '
            f'more than {above:.0%} confidence; median confidence of a mistake '
            f'{predict.percent(confidence[wrong].median().item())} '
            f'(of a right answer {predict.percent(confidence[~wrong].median().item())})')
