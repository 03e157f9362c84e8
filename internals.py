"""A look inside the from-scratch network, for the notebook: the source of a method, one training
step traced tensor by tensor, the hand-written gradients checked against central finite
differences and against torch's autograd, and how often each ReLU unit fires.

Torch's autograd and torch.nn.functional appear here only as the reference to check against;
nn.py itself uses neither.
"""
import inspect
import textwrap

import pandas as pd
import torch
import torch.nn.functional as F

import nn
from metrics import eval_mode

# what each kind of layer computes, forward and backward (g: the gradient arriving from above)
FORMULAS = {
    nn.Flatten: ('reshape (N, 1, 28, 28) -> (N, 784)', 'reshape back'),
    nn.Linear: ('y = x W^T + b', 'dW = g^T x, db = sum of g over the batch, dx = g W'),
    nn.ReLU: ('y = max(x, 0)', 'dx = g * (y > 0): the gradient passes where the unit fired'),
}


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
        add('forward', f'{name} output', h, FORMULAS[type(layer)][0])
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
            add('backward', f'{name}.{pname}.grad', p.grad, FORMULAS[nn.Linear][1].split(', ')[pname == 'bias'])
        if g is not None:
            add('backward', f'dL/d(input of {name})', g, FORMULAS[type(layer)][1].split(', ')[-1])
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


def autograd_logits(model, x, parameters):
    """The logits of a Flatten/Linear/ReLU Classifier computed with torch.nn.functional on
    `parameters` (name -> tensor), so that autograd can differentiate them."""
    for name, layer in model.children()[:-1]:
        if isinstance(layer, nn.Flatten):
            x = x.flatten(1)
        elif isinstance(layer, nn.Linear):
            x = F.linear(x, parameters[f'{name}.weight'], parameters[f'{name}.bias'])
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        else:
            raise TypeError(f'autograd_logits knows Flatten, Linear and ReLU, not {type(layer).__name__}')
    return x


def check_gradients(model, criterion, x, y, entries=30, eps=1e-5, seed=0):
    """nn.py's gradients of the loss for every parameter and for the images, against

    - central finite differences, (L(w + eps) - L(w - eps)) / (2 eps), for `entries` randomly
      chosen entries of each tensor: relative error ||analytic - numeric|| / ||numeric|| over
      them (one entry alone can be near zero, where a relative error means nothing);
    - torch's autograd on the same weights, every entry: the largest absolute difference.

    The model and the images must be float64: in float32 the finite differences themselves are
    only good to about 1e-3. eps balances the two errors of a central difference: rounding, about
    1e-16 / eps, and truncation, about eps^2. Returns one row per tensor."""
    if x.dtype != torch.float64 or any(p.data.dtype != torch.float64 for p in model.parameters()):
        raise ValueError('check gradients in float64: nn.Net(dtype=torch.float64) and x.double()')
    model.train()
    loss = criterion(model.logits(x), y)
    images_grad = model.backward(criterion.backward())
    tensors = dict(model.named_parameters())
    analytic = {name: p.grad.clone() for name, p in tensors.items()} | {'images': images_grad}
    values = {name: p.data for name, p in tensors.items()} | {'images': x}

    def loss_now():
        return criterion(model.logits(x), y).item()

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
        exact = analytic[name].reshape(-1)[picked]
        rows.append({'tensor': name, 'shape': shape(value), 'entries checked': len(picked),
                     'largest |gradient|': exact.abs().max().item(),
                     'finite differences: relative error': ((exact - numeric).norm() / numeric.norm()).item()})

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
