"""A small neural-network library written from scratch on torch tensors.

Every layer has a forward pass and a hand-written backward pass. Torch is used as a fast array
library only: no torch.nn, torch.optim or autograd. The API mirrors PyTorch's where it can, so

    from nn import Net
    model = Net()
    probabilities = model(images)        # (N, 10), images (N, 1, 28, 28) or (N, 784)

reads the way a PyTorch user expects. Training differentiates the logits, never a separate
softmax and log: see `Classifier` and `CrossEntropyLoss`.
"""
import math

import torch

__all__ = ['Parameter', 'Module', 'Linear', 'ReLU', 'Softmax', 'Flatten', 'Sequential',
           'Classifier', 'CrossEntropyLoss', 'Adam', 'Net', 'build_model', 'INITS',
           'Conv2d', 'MaxPool2d', 'Dropout', 'BatchNorm1d', 'BatchNorm2d', 'CNN']

INITS = ('xavier', 'he')


class Parameter:
    """A tensor the optimizer updates, with the gradient that backward writes for it."""

    def __init__(self, data):
        self.data = data
        self.grad = torch.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    def numel(self):
        return self.data.numel()

    def __repr__(self):
        return f'Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, device={self.data.device})'


class Module:
    """Base class: children, parameters and buffers are found from the instance's attributes.

    A subclass implements `forward(x)` and `backward(grad_out, input_grad=True)`. Forward keeps
    what backward needs with `save_for_backward`, in training mode only; backward differentiates
    the last pass, which must have been a training one. It writes (not adds) the parameter
    gradients into `Parameter.grad`, so there is nothing to zero between steps, and returns
    dL/d(input), or None with input_grad=False (the first layer of a network skips that work).
    Backward never changes weights; the optimizer does that.
    """
    buffers = ()  # names of tensor attributes saved in the state dict but not trained

    training = True
    saved = None  # what the last forward pass kept for backward

    def __call__(self, x):
        return self.forward(x)

    def save_for_backward(self, **saved):
        """Keep what backward needs, in training mode only. An evaluation pass drops what the
        training pass before it kept: backward then raises rather than silently differentiate
        an older pass, and inference holds no batch in memory."""
        self.saved = saved if self.training else None

    def saved_for_backward(self):
        if self.saved is None:
            raise RuntimeError(f'{type(self).__name__}.backward needs a forward pass in training mode just before '
                               f'it (the last pass was an evaluation, or there was none)')
        return self.saved

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out, input_grad=True):
        raise NotImplementedError

    def children(self):
        return [(name, value) for name, value in vars(self).items() if isinstance(value, Module)]

    def named_parameters(self, prefix=''):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f'{prefix}{name}.')

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=''):
        for name in self.buffers:
            yield prefix + name, getattr(self, name)
        for name, child in self.children():
            yield from child.named_buffers(f'{prefix}{name}.')

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def train(self, mode=True):
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        """Parameters and buffers by dotted name (`first_layer.weight`), detached copies."""
        state = {name: p.data.clone() for name, p in self.named_parameters()}
        state.update((name, b.clone()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state):
        """Copy tensors into the existing ones (so an optimizer's views stay valid).

        Raises ValueError naming the missing, unexpected or mis-shaped entries."""
        own = dict(self.named_parameters())
        own = {name: p.data for name, p in own.items()} | dict(self.named_buffers())
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        wrong = [f'{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}'
                 for k in own.keys() & state.keys() if state[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            raise ValueError(f'state dict does not fit {type(self).__name__}: '
                             f'missing {sorted(missing)}, unexpected {sorted(unexpected)}, '
                             f'wrong shape {wrong}')
        for name, tensor in own.items():
            tensor.copy_(state[name])
        return self

    def to(self, device=None, dtype=None):
        """Move parameters, gradients and buffers; floating dtypes change only where asked."""
        def move(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        for p in self.parameters():
            p.data, p.grad = move(p.data), move(p.grad)
        for module in self.modules():
            for name in module.buffers:
                setattr(module, name, move(getattr(module, name)))
        return self

    def modules(self):
        yield self
        for _, child in self.children():
            yield from child.modules()

    def extra_repr(self):
        return ''

    def __repr__(self):
        lines = [f'({name}): ' + repr(child).replace('\n', '\n  ') for name, child in self.children()]
        head = f'{type(self).__name__}({self.extra_repr()}'
        return head + ')' if not lines else head + '\n  ' + '\n  '.join(lines) + '\n)'


def init_weight(shape, fan_in, fan_out, init, device=None, dtype=None):
    """'xavier': Glorot uniform, U(+-sqrt(6 / (fan_in + fan_out))), the original project's choice;
    'he': Kaiming normal, N(0, 2 / fan_in), which keeps ReLU activations at a steady scale."""
    if init not in INITS:
        raise ValueError(f'init must be one of {INITS}, got {init!r}')
    if init == 'xavier':
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
    return torch.randn(shape, device=device, dtype=dtype) * math.sqrt(2.0 / fan_in)


def check_dtype(x, weight):
    if x.dtype != weight.data.dtype:
        raise ValueError(f'input is {x.dtype} but the layer is {weight.data.dtype}: convert one of '
                         f'them (x.to(dtype) or model.to(dtype=...))')


class Linear(Module):
    """y = x W^T + b, weight shaped (out_features, in_features) as in PyTorch.

    init: 'xavier' (Glorot uniform, the original project's choice) or 'he' (Kaiming normal,
    suited to ReLU). Biases start at zero."""

    def __init__(self, in_features, out_features, init='xavier', device=None, dtype=None):
        weight = init_weight((out_features, in_features), in_features, out_features, init, device, dtype)
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self.weight = Parameter(weight)
        self.bias = Parameter(torch.zeros(out_features, device=device, dtype=dtype))

    def forward(self, x):
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f'Linear({self.in_features}, {self.out_features}) expects input (N, {self.in_features}), '
                             f'got {tuple(x.shape)}; images for Net are (N, 1, 28, 28), (N, 28, 28) or (N, 784)')
        check_dtype(x, self.weight)
        self.save_for_backward(input=x)
        return torch.addmm(self.bias.data, x, self.weight.data.t())

    def backward(self, grad_out, input_grad=True):
        """input_grad=False skips dL/dx: the first layer of a network never needs it."""
        torch.mm(grad_out.t(), self.saved_for_backward()['input'], out=self.weight.grad)
        torch.sum(grad_out, 0, out=self.bias.grad)
        return grad_out @ self.weight.data if input_grad else None

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, init={self.init!r}'


class ReLU(Module):
    def forward(self, x):
        output = x.clamp_min(0)
        self.save_for_backward(output=output)
        return output

    def backward(self, grad_out, input_grad=True):
        # the output is >= 0, so its sign is the 0/1 derivative, with no bool-to-float copy
        return grad_out * self.saved_for_backward()['output'].sign() if input_grad else None


class Softmax(Module):
    """Softmax over the last dimension, shifted by the row maximum so it never overflows."""

    def forward(self, x):
        output = softmax(x)
        self.save_for_backward(output=output)
        return output

    def backward(self, grad_out, input_grad=True):
        if not input_grad:
            return None
        # Jacobian-vector product: s * (g - <g, s>)
        s = self.saved_for_backward()['output']
        return s * (grad_out - (grad_out * s).sum(-1, keepdim=True))


class Flatten(Module):
    """(N, *) -> (N, prod(*)): images (N, 1, 28, 28) become rows of 784."""

    def forward(self, x):
        self.save_for_backward(input_shape=x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out, input_grad=True):
        return grad_out.reshape(self.saved_for_backward()['input_shape']) if input_grad else None


class AsImages(Module):
    """(N, 28, 28) or (N, 784) -> (N, 1, 28, 28): the CNN's first layer, so that it takes the
    inputs Net takes and its backward returns gradients in the caller's shape."""

    def forward(self, x):
        self.save_for_backward(input_shape=x.shape)
        if x.dim() == 4 or x.shape[-1] * (x.shape[-2] if x.dim() == 3 else 1) != 784:
            return x
        return x.reshape(x.shape[0], 1, 28, 28)

    def backward(self, grad_out, input_grad=True):
        return grad_out.reshape(self.saved_for_backward()['input_shape']) if input_grad else None


class Sequential(Module):
    """Layers applied in order; named with keywords (`Sequential(fc=Linear(2, 3))`) or numbered."""

    def __init__(self, *layers, **named_layers):
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        for name, layer in named_layers.items():
            setattr(self, name, layer)

    @property
    def layers(self):
        return [layer for _, layer in self.children()]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out, input_grad=True):
        return backward_through(self.layers, grad_out, input_grad)


class Classifier(Sequential):
    """A Sequential whose last layer is Softmax.

    Calling it returns probabilities. Training calls `logits(x)` instead and feeds
    CrossEntropyLoss, whose fused gradient (softmax - target) / N replaces the softmax's:
    `backward(grad_logits)` always starts from the logits, and raises unless the last pass was
    `logits(x)` in training mode: not after `model(x)` (whose caches it would mistake for the
    logits pass's) nor after an evaluation (which keeps nothing)."""
    last_pass = None  # 'logits', 'probabilities' (model(x)) or 'evaluation'

    def forward(self, x):
        self.last_pass = 'probabilities' if self.training else 'evaluation'
        return super().forward(x)

    def logits(self, x):
        self.last_pass = 'logits' if self.training else 'evaluation'
        for layer in self.layers[:-1]:
            x = layer(x)
        return x

    def backward(self, grad_logits, input_grad=True):
        if self.last_pass != 'logits':
            last = {'probabilities': 'model(x), through the softmax', 'evaluation': 'an evaluation'}
            raise RuntimeError(f'{type(self).__name__}.backward takes the gradient of the logits of the last pass, '
                               f'which was {last.get(self.last_pass, "none")}: call model.logits(x) in training '
                               f'mode just before backward')
        return backward_through(self.layers[:-1], grad_logits, input_grad)


def backward_through(layers, grad_out, input_grad=True):
    """Back through `layers` in reverse. input_grad=False stops at the first layer with
    parameters, which computes only its parameter gradients: nothing needs dL/d(images), and
    skipping it saves a third of that layer's work."""
    stop = 0 if input_grad else next((i for i, layer in enumerate(layers) if layer.parameters()), len(layers))
    for i in reversed(range(stop, len(layers))):
        grad_out = layers[i].backward(grad_out, input_grad=input_grad or i > stop)
    return grad_out if input_grad else None


class Net(Classifier):
    """The reference model: 784-256-128-10 MLP with ReLU and a softmax output."""

    def __init__(self, init='xavier', device=None, dtype=None):
        self.config = {'init': init}
        super().__init__(
            flatten=Flatten(),
            first_layer=Linear(784, 256, init, device, dtype),
            first_activation=ReLU(),
            second_layer=Linear(256, 128, init, device, dtype),
            second_activation=ReLU(),
            output_layer=Linear(128, 10, init, device, dtype),
            output_activation=Softmax(),
        )


class Conv2d(Module):
    """2-D convolution (cross-correlation, as PyTorch's) on (N, C, H, W), weight (out, in, k, k).

    Forward is im2col: every k x k patch of the zero-padded input becomes a column of (kernel
    row, kernel column, channel) values, copied once (Tensor.unfold, no Python loop over pixels),
    and one matrix product with the bias added in the same call applies all filters to the
    whole batch. The result is returned as an (N, out, Ho, Wo) view of (N, Ho, Wo, out) memory,
    the layout the next convolution, pooling and batch norm read fastest; element-wise ops keep
    it. Backward is the weight gradient's product with the saved patches, and the input gradient
    as k*k shifted products (see input_grad). init as in Linear, with fan-in in*k*k and fan-out
    out*k*k."""

    CHUNK_ROWS = 8192  # input_grad's rows per chunk: 2 MB of a 64-channel gradient, cache-sized

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, init='he',
                 device=None, dtype=None):
        k = kernel_size
        weight = init_weight((out_channels, in_channels, k, k), in_channels * k * k, out_channels * k * k,
                             init, device, dtype)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.init = stride, padding, init
        self.weight = Parameter(weight)
        self.bias = Parameter(torch.zeros(out_channels, device=device, dtype=dtype))

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{self!r} expects input (N, {self.in_channels}, H, W), got {tuple(x.shape)}')
        check_dtype(x, self.weight)
        k, p = self.kernel_size, self.padding
        n, c, h, w = x.shape
        if h + 2 * p < k or w + 2 * p < k:
            raise ValueError(f'{self!r}: input {h}x{w} with padding {p} is smaller than the kernel')
        cols, (ho, wo) = self.im2col(x)
        out = torch.addmm(self.bias.data, cols.t(), self.patch_weight())
        self.save_for_backward(cols=cols, input_shape=x.shape)
        return out.view(n, ho, wo, self.out_channels).permute(0, 3, 1, 2)

    def im2col(self, x):
        """The patches as a (k*k*C, N*Ho*Wo) matrix, and (Ho, Wo). The copy runs along whichever
        is longer: each pixel's C channels (channels-last patches, returned transposed, a view),
        or, for few channels (conv1's one would be copied a float at a time), each output row."""
        k, s, p = self.kernel_size, self.stride, self.padding
        n, c, h, w = x.shape
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if c >= wo:
            padded = x.new_zeros(n, h + 2 * p, w + 2 * p, c)
            padded[:, p:p + h, p:p + w] = x.permute(0, 2, 3, 1)
            patches = padded.unfold(1, k, s).unfold(2, k, s)          # (n, ho, wo, c, k, k), a view
            return patches.permute(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c).t(), (ho, wo)
        padded = x.new_zeros(n, c, h + 2 * p, w + 2 * p)
        padded[:, :, p:p + h, p:p + w] = x
        patches = padded.unfold(2, k, s).unfold(3, k, s)              # (n, c, ho, wo, k, k), a view
        return patches.permute(4, 5, 1, 0, 2, 3).reshape(k * k * c, -1), (ho, wo)

    def patch_weight(self):
        """The weight as a (k*k*in, out) matrix, rows in the (kernel row, kernel column, channel)
        order of a patch. A contiguous copy: addmm took 1.5x as long with a transposed view."""
        return self.weight.data.permute(2, 3, 1, 0).reshape(-1, self.out_channels)

    def backward(self, grad_out, input_grad=True):
        saved = self.saved_for_backward()
        n, _, ho, wo = grad_out.shape
        k = self.kernel_size
        g = grad_out.permute(0, 2, 3, 1).reshape(n * ho * wo, self.out_channels)  # a view in channels-last
        # cols g, not g^T cols^T: the same product, about twice as fast for a tall, narrow g
        grad_weight = torch.mm(saved['cols'], g).view(k, k, self.in_channels, self.out_channels)
        self.weight.grad.copy_(grad_weight.permute(3, 2, 0, 1))
        torch.sum(g, 0, out=self.bias.grad)
        if not input_grad:
            return None
        return self.input_grad(grad_out.permute(0, 2, 3, 1), saved['input_shape'])

    def input_grad(self, g, input_shape):
        """The input's gradient with no patch gradient and no col2im: place the (N, Ho, Wo, out)
        gradient on the padded input's pixel grid (where each patch starts), flatten that grid
        to rows of pixels, and kernel offset (i, j) becomes a shift of i * padded width + j rows.
        Each offset is then one in-place product (grid rows x out) @ (out x in) added into the
        shifted rows of the padded input gradient: no 9x-sized patch gradient to write and add
        back, at the price of products over the whole grid (zero rows at the borders). Rows go
        in chunks so that each chunk's rows stay in cache across the k*k products."""
        k, s, p = self.kernel_size, self.stride, self.padding
        n, _, h, w = input_shape
        ho, wo = g.shape[1:3]
        hp, wp = h + 2 * p, w + 2 * p
        grid = g.new_zeros(n, hp, wp, self.out_channels)
        grid[:, :s * (ho - 1) + 1:s, :s * (wo - 1) + 1:s] = g
        grid = grid.view(-1, self.out_channels)
        grad_padded = g.new_zeros(n * hp * wp, self.in_channels)
        weights = self.weight.data.permute(2, 3, 0, 1).contiguous()    # (k, k, out, in)
        shifts = [(i * wp + j, weights[i, j]) for i in range(k) for j in range(k)]
        rows = grid.shape[0] - shifts[-1][0]  # every patch's top-left pixel lies in these rows
        for start in range(0, rows, self.CHUNK_ROWS):
            chunk = grid[start:min(start + self.CHUNK_ROWS, rows)]
            for shift, weight in shifts:
                grad_padded[start + shift:start + shift + len(chunk)].addmm_(chunk, weight)
        return grad_padded.view(n, hp, wp, self.in_channels)[:, p:p + h, p:p + w].permute(0, 3, 1, 2)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, init={self.init!r}')


class MaxPool2d(Module):
    """Maximum over k x k windows (stride defaults to k; sizes round down, as PyTorch's).

    The CNN's 2 x 2 windows with stride 2 take a fast path: the four pixels of every window are
    four strided views of the channels-last input, compared pairwise (left with right in each
    row, then top row with bottom row). Three 0/1 masks record each comparison's winner,
    and backward routes the gradient through them with a few whole-tensor multiplies: no index
    arithmetic, no scatter, about a third of the general path's time.

    Other sizes take the windows as a view (Tensor.unfold over the channels-last layout, so the
    output keeps it) and reduce them in two steps, over kernel columns then kernel rows. Both
    paths keep the first maximum in row-major order, as PyTorch does on ties. Backward sends
    each window's gradient to that pixel with one scatter_add over flat pixel indices
    (overlapping windows add up)."""

    def __init__(self, kernel_size=2, stride=None):
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        if x.dim() != 4 or x.shape[2] < self.kernel_size or x.shape[3] < self.kernel_size:
            raise ValueError(f'MaxPool2d({self.kernel_size}) expects input (N, C, H, W) with H, W >= '
                             f'{self.kernel_size}, got {tuple(x.shape)}')
        k, s = self.kernel_size, self.stride
        n, c, h, w = x.shape
        if k == s == 2:
            return self.forward_2x2(x)
        windows = x.permute(0, 2, 3, 1).unfold(1, k, s).unfold(2, k, s)   # (n, ho, wo, c, k, k), a view
        row_max, col = windows.max(5)                                     # (n, ho, wo, c, k)
        out, row = row_max.max(4)                                         # (n, ho, wo, c)
        index = None
        if self.training:  # the flat pixel index (y * w + x) of each window's maximum, in place
            ho, wo = out.shape[1:3]
            top, left = torch.arange(ho, device=x.device) * s, torch.arange(wo, device=x.device) * s
            corner = top[:, None, None] * w + left[:, None]  # (ho, wo, 1): each window's first pixel
            col = col.gather(4, row[..., None]).squeeze(4)
            index = row.mul_(w).add_(col).add_(corner).view(n, ho * wo, c)
        self.save_for_backward(index=index, input_shape=x.shape)
        return out.permute(0, 3, 1, 2)

    def backward(self, grad_out, input_grad=True):
        saved = self.saved_for_backward()
        if not input_grad:
            return None
        n, c, h, w = saved['input_shape']
        if 'lower' in saved:
            return self.backward_2x2(grad_out, **saved)
        grad_in = grad_out.new_zeros(n, h * w, c)
        grad_in.scatter_add_(1, saved['index'], grad_out.permute(0, 2, 3, 1).reshape(n, -1, c))
        return grad_in.view(n, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def corners(image):
        """The top-left, top-right, bottom-left and bottom-right pixels of every 2 x 2 window of
        a channels-last (n, h, w, c) image, each an (n, h // 2, w // 2, c) view."""
        n, h, w, c = image.shape
        windows = image[:, :h - h % 2, :w - w % 2].unflatten(2, (w // 2, 2)).unflatten(1, (h // 2, 2))
        return [windows[:, :, i, :, j] for i in (0, 1) for j in (0, 1)]

    def forward_2x2(self, x):
        top_left, top_right, bottom_left, bottom_right = self.corners(x.permute(0, 2, 3, 1))
        top, bottom = torch.maximum(top_left, top_right), torch.maximum(bottom_left, bottom_right)
        masks = None
        if self.training:  # strictly greater: on ties the left, then the top, pixel wins
            masks = {'right_top': greater(top_right, top_left), 'right_bottom': greater(bottom_right, bottom_left),
                     'lower': greater(bottom, top)}
        self.save_for_backward(input_shape=x.shape, **(masks or {}))
        return torch.maximum(top, bottom).permute(0, 3, 1, 2)

    def backward_2x2(self, grad_out, input_shape, right_top, right_bottom, lower):
        n, c, h, w = input_shape
        # zeros only where the windows leave a last odd row or column uncovered
        grad_in = (grad_out.new_zeros if h % 2 or w % 2 else grad_out.new_empty)(n, h, w, c)
        top_left, top_right, bottom_left, bottom_right = self.corners(grad_in)
        g = grad_out.permute(0, 2, 3, 1)
        g_bottom = g * lower
        g_top = g - g_bottom
        for g_row, right, left_pixel, right_pixel in ((g_top, right_top, top_left, top_right),
                                                      (g_bottom, right_bottom, bottom_left, bottom_right)):
            torch.mul(g_row, right, out=right_pixel)
            torch.sub(g_row, right_pixel, out=left_pixel)
        return grad_in.permute(0, 3, 1, 2)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride}'


def greater(a, b):
    """a > b as 0.0/1.0 in a's dtype, a mask to multiply gradients by: a product of floats with
    a bool mask converts it element by element, about ten times slower on a CPU."""
    return torch.gt(a, b, out=a.new_empty(a.shape))


class Dropout(Module):
    """In training, zero each value with probability p and scale the rest by 1/(1-p) (inverted
    dropout, so evaluation is the identity). The mask is drawn from torch's global generator,
    which training reseeds every epoch, so a resumed run draws the same masks."""

    def __init__(self, p=0.5):
        if not 0 <= p < 1:
            raise ValueError(f'dropout probability must be in [0, 1), got {p}')
        self.p = p

    def forward(self, x):
        mask = (torch.rand_like(x) >= self.p).to(x.dtype).div_(1 - self.p) if self.training and self.p else None
        self.save_for_backward(mask=mask)
        return x if mask is None else x * mask

    def backward(self, grad_out, input_grad=True):
        mask = self.saved_for_backward()['mask']
        if not input_grad:
            return None
        return grad_out if mask is None else grad_out * mask

    def extra_repr(self):
        return f'p={self.p}'


class BatchNorm(Module):
    """Batch normalisation over every dimension but the channels (dim 1), with a learned scale
    (weight) and shift (bias) per channel.

    Training normalises with the batch's mean and (biased) variance and updates the running
    estimates, as PyTorch does (momentum 0.1, unbiased variance in the running estimate);
    evaluation uses the running estimates, which are buffers, so they are saved in the state
    dict. Subclasses fix the input rank. Evaluation folds the running statistics, scale and
    shift into one multiply-add per value."""
    buffers = ('running_mean', 'running_var')
    input_dims = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, device=None, dtype=None):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(torch.ones(num_features, device=device, dtype=dtype))
        self.bias = Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        self.running_mean = torch.zeros(num_features, device=device, dtype=dtype)
        self.running_var = torch.ones(num_features, device=device, dtype=dtype)

    def forward(self, x):
        if x.dim() != self.input_dims or x.shape[1] != self.num_features:
            raise ValueError(f'{type(self).__name__}({self.num_features}) expects input with {self.input_dims} '
                             f'dimensions and {self.num_features} channels in dim 1, got {tuple(x.shape)}')
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            self.save_for_backward()
            scale = self.weight.data * (self.running_var + self.eps).rsqrt()
            shift = self.bias.data - self.running_mean * scale
            return torch.addcmul(shift.view(shape), x, scale.view(shape))
        count = x.numel() // self.num_features
        if count < 2:
            raise ValueError(f'{type(self).__name__} in training needs more than one value per channel, '
                             f'got input {tuple(x.shape)}; use a larger batch or model.eval()')
        # var = E[x^2] - E[x]^2 from two plain sums over each channel's values: var_mean's Welford
        # reduction over the batch takes 10-20x as long on a CPU. The difference loses precision
        # only when |mean| is hundreds of standard deviations (not so for these activations);
        # the clamp keeps a rounding error from turning a near-zero variance negative.
        mean = channel_sum(x) / count
        var = (channel_sum(x * x) / count - mean * mean).clamp_min_(0)
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var * (count / (count - 1)), self.momentum)
        inv_std = (var + self.eps).rsqrt().view(shape)
        normalized = torch.addcmul(-mean.view(shape) * inv_std, x, inv_std)  # (x - mean) * inv_std
        self.save_for_backward(normalized=normalized, inv_std=inv_std)
        return torch.addcmul(self.bias.data.view(shape), normalized, self.weight.data.view(shape))

    def backward(self, grad_out, input_grad=True):
        saved = self.saved_for_backward()
        xhat, inv_std = saved['normalized'], saved['inv_std']
        shape = inv_std.shape
        self.weight.grad.copy_(channel_sum(grad_out * xhat))
        self.bias.grad.copy_(channel_sum(grad_out))
        if not input_grad:
            return None
        # the batch mean and variance depend on every input: subtract their share of the gradient,
        # (g - mean(g) - xhat * mean(g * xhat)) * weight * inv_std, in two multiply-adds
        count = grad_out.numel() // self.num_features
        scale = self.weight.data.view(shape) * inv_std
        mean_grad = (self.bias.grad / count).view(shape)
        proj = (self.weight.grad / count).view(shape)
        return torch.addcmul(-mean_grad * scale, xhat, -proj * scale).addcmul_(grad_out, scale)

    def extra_repr(self):
        return f'{self.num_features}, eps={self.eps}, momentum={self.momentum}'


def channel_sum(x):
    """Sum over every dimension but dim 1. In (N, C, H, W) memory, summing the contiguous
    trailing dimensions first is several times faster on a CPU than one reduction over
    (0, 2, 3); in the convolutions' channels-last memory the channels are the rows' inner dim."""
    if x.dim() == 2:
        return x.sum(0)
    if x.is_contiguous():
        return x.flatten(2).sum(2).sum(0)
    return x.movedim(1, -1).reshape(-1, x.shape[1]).sum(0)  # a view when channels are innermost


class BatchNorm1d(BatchNorm):
    """BatchNorm over features (N, C)."""
    input_dims = 2


class BatchNorm2d(BatchNorm):
    """BatchNorm over image channels (N, C, H, W), statistics pooled over batch and pixels."""
    input_dims = 4


class CNN(Classifier):
    """A small convolutional network, fast on a CPU. Two 3x3 conv blocks (conv, 2x2 max pool,
    batch norm, ReLU: pooling first makes the rest 4x cheaper) take 28x28 images to
    `channels[1]` maps of 7x7; then a hidden layer with batch norm and dropout, and a softmax
    over the 10 digits. 99.5% test accuracy with `python train.py --preset cnn-best`."""

    def __init__(self, channels=(32, 64), hidden=128, dropout=0.0, init='he', device=None, dtype=None):
        c1, c2 = channels
        self.config = {'channels': tuple(channels), 'hidden': hidden, 'dropout': dropout, 'init': init}
        super().__init__(
            images=AsImages(),
            conv1=Conv2d(1, c1, 3, padding=1, init=init, device=device, dtype=dtype),
            pool1=MaxPool2d(2),
            norm1=BatchNorm2d(c1, device=device, dtype=dtype),
            activation1=ReLU(),
            conv2=Conv2d(c1, c2, 3, padding=1, init=init, device=device, dtype=dtype),
            pool2=MaxPool2d(2),
            norm2=BatchNorm2d(c2, device=device, dtype=dtype),
            activation2=ReLU(),
            flatten=Flatten(),
            hidden_layer=Linear(c2 * 7 * 7, hidden, init, device, dtype),
            hidden_norm=BatchNorm1d(hidden, device=device, dtype=dtype),
            hidden_activation=ReLU(),
            dropout=Dropout(dropout),
            output_layer=Linear(hidden, 10, init, device, dtype),
            output_activation=Softmax(),
        )


MODELS = {'Net': Net, 'CNN': CNN}


def build_model(name, **config):
    """Rebuild a model from the architecture a checkpoint records (`name`, `config`)."""
    if name not in MODELS:
        raise ValueError(f'unknown architecture {name!r}; this version knows {sorted(MODELS)}')
    return MODELS[name](**config)


def softmax(x):
    e = (x - x.amax(-1, keepdim=True)).exp_()
    return e / e.sum(-1, keepdim=True)


def log_softmax(x):
    shifted = x - x.amax(-1, keepdim=True)
    return shifted - shifted.exp().sum(-1, keepdim=True).log_()


class CrossEntropyLoss:
    """Mean cross-entropy of logits (N, C) against class indices (N,), as torch's.

    Works on logits through log-softmax, so logits of any magnitude give a finite loss, and
    the gradient is the fused (softmax - target) / N. label_smoothing mixes the one-hot target
    with the uniform distribution, as torch's option of that name. A target of -1 means "none
    of the classes" (outlier exposure, Hendrycks et al. 2019): that row's target is the uniform
    distribution, so a scribble trained this way teaches the model to be unsure, not to pick a
    digit. Not a layer (a Module): it takes two arguments, and its backward none, so a model
    never collects it as a child."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, logits, targets):
        log_p = log_softmax(logits)
        self.probs, self.targets = log_p.exp(), targets
        # each row's target: one_hot * weight + uniform * (1 - weight); weight 0 for the -1 rows
        self.weight = (targets >= 0).to(log_p.dtype) * (1 - self.label_smoothing)
        picked = log_p.gather(1, targets.clamp(min=0)[:, None])[:, 0]
        return -(self.weight * picked + (1 - self.weight) * log_p.mean(1)).mean()

    def backward(self):
        n, c = self.probs.shape
        grad = self.probs - ((1 - self.weight) / c)[:, None]
        grad[torch.arange(n, device=grad.device), self.targets.clamp(min=0)] -= self.weight
        return grad / n


# Adam's periodic flush of negligible moments (see Adam): every FLUSH_EVERY steps, first moments
# below FLUSH_EXP_AVG and second moments below FLUSH_EXP_AVG_SQ become zero. Such moments change
# no weight by a float32-visible amount, and with betas above (0.7, 0.85) none falls from these
# bounds to a denormal (below 1.2e-38) within FLUSH_EVERY steps.
FLUSH_EVERY = 100
FLUSH_EXP_AVG = 1e-20
FLUSH_EXP_AVG_SQ = 1e-30


class Adam:
    """Adam (Kingma & Ba), with optional decoupled weight decay (AdamW, Loshchilov & Hutter).

    On construction the parameters are packed into one flat buffer (each Parameter's data and
    grad become views of it), so a step is a handful of vector operations whatever the number
    of layers. Create the optimizer after moving the model to its device, as in PyTorch: a
    later `model.to(...)` replaces the tensors, and step() then raises rather than train a copy.

    Every FLUSH_EVERY steps, moments too small to change a step are set to zero. A weight whose
    gradient is exactly zero (one into a dead ReLU unit) would otherwise see its first moment
    decay into denormal floats (below 1.2e-38) and stay there: a third of the MLP's do after one
    epoch, and x86 CPUs process denormals many times slower, which made the default run 1.5x
    slower on a 2-core Intel Xeon."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError('Adam got no parameters')
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.data, self.grad = pack([p.data for p in self.params]), pack([p.grad for p in self.params])
        for p, data, grad in zip(self.params, unpack(self.data, self.params), unpack(self.grad, self.params)):
            p.data, p.grad = data, grad
        self.pointers = [(p.data.data_ptr(), p.grad.data_ptr()) for p in self.params]
        self.exp_avg = torch.zeros_like(self.data)
        self.exp_avg_sq = torch.zeros_like(self.data)
        self.steps = 0

    def step(self):
        if any((p.data.data_ptr(), p.grad.data_ptr()) != ptrs for p, ptrs in zip(self.params, self.pointers)):
            raise RuntimeError('the parameters are no longer the ones this optimizer packed (model.to(...) or a new '
                               'tensor assigned to .data after it was created): create the optimizer after '
                               'model.to(...)')
        beta1, beta2 = self.betas
        self.steps += 1
        if self.weight_decay:
            self.data.mul_(1 - self.lr * self.weight_decay)
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        if self.steps % FLUSH_EVERY == 0:
            self.exp_avg.masked_fill_(self.exp_avg.abs() < FLUSH_EXP_AVG, 0)
            self.exp_avg_sq.masked_fill_(self.exp_avg_sq < FLUSH_EXP_AVG_SQ, 0)
        # lr/b1 * m / (sqrt(v/b2) + eps), with sqrt(b2) folded into the constants: one op less
        sqrt_bias2 = math.sqrt(1 - beta2 ** self.steps)
        denom = self.exp_avg_sq.sqrt().add_(self.eps * sqrt_bias2)
        self.data.addcdiv_(self.exp_avg, denom, value=-self.lr * sqrt_bias2 / (1 - beta1 ** self.steps))

    def state_dict(self):
        return {'steps': self.steps, 'exp_avg': self.exp_avg.clone(), 'exp_avg_sq': self.exp_avg_sq.clone(),
                'lr': self.lr, 'betas': self.betas, 'eps': self.eps, 'weight_decay': self.weight_decay}

    def load_state_dict(self, state):
        if state['exp_avg'].shape != self.exp_avg.shape:
            raise ValueError(f'optimizer state holds {state["exp_avg"].numel()} values, '
                             f'these parameters {self.exp_avg.numel()}')
        self.exp_avg.copy_(state['exp_avg'])
        self.exp_avg_sq.copy_(state['exp_avg_sq'])
        self.steps, self.lr, self.eps, self.weight_decay = state['steps'], state['lr'], state['eps'], state['weight_decay']
        self.betas = tuple(state['betas'])


def pack(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def unpack(flat, params):
    views, offset = [], 0
    for p in params:
        views.append(flat[offset:offset + p.numel()].view(p.shape))
        offset += p.numel()
    return views
