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

    A subclass implements `forward(x)` (caching what backward needs) and `backward(grad_out)`,
    which returns the gradient with respect to the input and writes parameter gradients into
    `Parameter.grad`. Backward never changes weights; the optimizer does that.
    """
    buffers = ()  # names of tensor attributes saved in the state dict but not trained

    training = True

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
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

    def zero_grad(self):
        for p in self.parameters():
            p.grad.zero_()

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
        self.input = x
        return torch.addmm(self.bias.data, x, self.weight.data.t())

    def backward(self, grad_out, input_grad=True):
        """input_grad=False skips dL/dx: the first layer of a network never needs it."""
        torch.mm(grad_out.t(), self.input, out=self.weight.grad)
        torch.sum(grad_out, 0, out=self.bias.grad)
        return grad_out @ self.weight.data if input_grad else None

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, init={self.init!r}'


class ReLU(Module):
    def forward(self, x):
        self.output = x.clamp_min(0)
        return self.output

    def backward(self, grad_out):
        # the output is >= 0, so its sign is the 0/1 derivative, with no bool-to-float copy
        return grad_out * self.output.sign()


class Softmax(Module):
    """Softmax over the last dimension, shifted by the row maximum so it never overflows."""

    def forward(self, x):
        self.output = softmax(x)
        return self.output

    def backward(self, grad_out):
        # Jacobian-vector product: s * (g - <g, s>)
        s = self.output
        return s * (grad_out - (grad_out * s).sum(-1, keepdim=True))


class Flatten(Module):
    """(N, *) -> (N, prod(*)): images (N, 1, 28, 28) become rows of 784."""

    def forward(self, x):
        self.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        return grad_out.reshape(self.input_shape)


class AsImages(Module):
    """(N, 28, 28) or (N, 784) -> (N, 1, 28, 28): the CNN's first layer, so that it takes the
    inputs Net takes and its backward returns gradients in the caller's shape."""

    def forward(self, x):
        self.input_shape = x.shape
        if x.dim() == 4 or x.shape[-1] * (x.shape[-2] if x.dim() == 3 else 1) != 784:
            return x
        return x.reshape(x.shape[0], 1, 28, 28)

    def backward(self, grad_out):
        return grad_out.reshape(self.input_shape)


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
    CrossEntropyLoss, whose fused gradient replaces the softmax's. `backward` mirrors
    whichever of the two passes ran last."""

    def forward(self, x):
        self.through_softmax = True
        return super().forward(x)

    def logits(self, x):
        self.through_softmax = False
        for layer in self.layers[:-1]:
            x = layer(x)
        return x

    def backward(self, grad_out, input_grad=True):
        layers = self.layers if self.through_softmax else self.layers[:-1]
        return backward_through(layers, grad_out, input_grad)


def backward_through(layers, grad_out, input_grad=True):
    """Back through `layers` in reverse. input_grad=False stops at the first layer with
    parameters, which computes only its parameter gradients: nothing needs dL/d(images), and
    skipping it saves a third of that layer's work."""
    first = next((i for i, layer in enumerate(layers) if layer.parameters()), 0)
    stop = 0 if input_grad else first + 1
    for layer in reversed(layers[stop:]):
        grad_out = layer.backward(grad_out)
    return grad_out if input_grad else layers[first].backward(grad_out, input_grad=False)


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

    Forward is im2col: every k x k patch becomes a column (Tensor.unfold, no Python loop over
    pixels) and one batched matrix product applies all filters. Backward is the transposed
    product, and col2im adds the column gradients back into the image with one strided slice
    per kernel offset (k*k of them, 9 for a 3x3 kernel). init as in Linear, with fan-in
    in*k*k and fan-out out*k*k."""

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
        k, s, p = self.kernel_size, self.stride, self.padding
        n, c, h, w = x.shape
        if h + 2 * p < k or w + 2 * p < k:
            raise ValueError(f'{self!r}: input {h}x{w} with padding {p} is smaller than the kernel')
        if p:
            padded = x.new_zeros(n, c, h + 2 * p, w + 2 * p)
            padded[:, :, p:p + h, p:p + w] = x
        else:
            padded = x
        patches = padded.unfold(2, k, s).unfold(3, k, s)          # (n, c, ho, wo, k, k), a view
        ho, wo = patches.shape[2:4]
        self.cols = patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * k * k, ho * wo)
        self.padded_shape = padded.shape
        out = torch.matmul(self.weight.data.view(self.out_channels, -1), self.cols)
        return out.add_(self.bias.data[:, None]).view(n, self.out_channels, ho, wo)

    def backward(self, grad_out, input_grad=True):
        n, _, ho, wo = grad_out.shape
        g = grad_out.reshape(n, self.out_channels, ho * wo)
        self.weight.grad.copy_(torch.matmul(g, self.cols.transpose(1, 2)).sum(0).view_as(self.weight.grad))
        torch.sum(g, (0, 2), out=self.bias.grad)
        if not input_grad:
            return None
        k, s, p = self.kernel_size, self.stride, self.padding
        grad_cols = torch.matmul(self.weight.data.view(self.out_channels, -1).t(), g)
        grad_cols = grad_cols.view(n, self.in_channels, k, k, ho, wo)
        grad_padded = grad_out.new_zeros(self.padded_shape)
        for i in range(k):
            for j in range(k):
                grad_padded[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += grad_cols[:, :, i, j]
        h, w = self.padded_shape[2] - 2 * p, self.padded_shape[3] - 2 * p
        return grad_padded[:, :, p:p + h, p:p + w]

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, init={self.init!r}')


class MaxPool2d(Module):
    """Maximum over k x k windows (stride defaults to k; sizes round down, as PyTorch's).

    Forward compares the k*k strided views of the input (one per window offset), which is
    much faster than gathering the windows. Backward sends each window's gradient to the pixel
    that was its maximum, with one scatter_add over flat indices (overlapping windows add up)."""

    def __init__(self, kernel_size=2, stride=None):
        self.kernel_size, self.stride = kernel_size, stride or kernel_size

    def forward(self, x):
        if x.dim() != 4 or x.shape[2] < self.kernel_size or x.shape[3] < self.kernel_size:
            raise ValueError(f'MaxPool2d({self.kernel_size}) expects input (N, C, H, W) with H, W >= '
                             f'{self.kernel_size}, got {tuple(x.shape)}')
        k, s = self.kernel_size, self.stride
        n, c, h, w = x.shape
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        out = offset = None
        for i in range(k):
            for j in range(k):
                view = x[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
                if out is None:
                    out, offset = view.clone(), torch.zeros(view.shape, dtype=torch.long, device=x.device)
                else:
                    better = view > out  # strict: ties keep the first maximum, as PyTorch does
                    out = torch.where(better, view, out)
                    offset.masked_fill_(better, i * w + j)
        corner = (torch.arange(ho, device=x.device)[:, None] * (s * w) + torch.arange(wo, device=x.device) * s)
        self.index, self.input_shape = (offset + corner).view(n * c, ho * wo), x.shape
        return out

    def backward(self, grad_out):
        n, c, h, w = self.input_shape
        grad_in = grad_out.new_zeros(n * c, h * w)
        grad_in.scatter_add_(1, self.index, grad_out.reshape(n * c, -1))
        return grad_in.view(self.input_shape)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride}'


class Dropout(Module):
    """In training, zero each value with probability p and scale the rest by 1/(1-p) (inverted
    dropout, so evaluation is the identity). The mask is drawn from torch's global generator,
    which training reseeds every epoch, so a resumed run draws the same masks."""

    def __init__(self, p=0.5):
        if not 0 <= p < 1:
            raise ValueError(f'dropout probability must be in [0, 1), got {p}')
        self.p = p

    def forward(self, x):
        if not self.training or not self.p:
            self.mask = None
            return x
        self.mask = (torch.rand_like(x) >= self.p).to(x.dtype).div_(1 - self.p)
        return x * self.mask

    def backward(self, grad_out):
        return grad_out if self.mask is None else grad_out * self.mask

    def extra_repr(self):
        return f'p={self.p}'


class BatchNorm(Module):
    """Batch normalisation over every dimension but the channels (dim 1), with a learned scale
    (weight) and shift (bias) per channel.

    Training normalises with the batch's mean and (biased) variance and updates the running
    estimates, as PyTorch does (momentum 0.1, unbiased variance in the running estimate);
    evaluation uses the running estimates, which are buffers, so they are saved in the state
    dict. Subclasses fix the input rank."""
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
        if self.training:
            count = x.numel() // self.num_features
            if count < 2:
                raise ValueError(f'{type(self).__name__} in training needs more than one value per channel, '
                                 f'got input {tuple(x.shape)}; use a larger batch or model.eval()')
            mean = channel_sum(x) / count
            centered = x - mean.view(shape)
            var = channel_sum(centered.square()) / count
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * (count / (count - 1)), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
            centered = x - mean.view(shape)
        self.shape, self.batch_statistics = shape, self.training
        self.inv_std = (var + self.eps).rsqrt().view(shape)
        self.normalized = centered.mul_(self.inv_std)
        return torch.addcmul(self.bias.data.view(shape), self.normalized, self.weight.data.view(shape))

    def backward(self, grad_out):
        xhat = self.normalized
        self.weight.grad.copy_(channel_sum(grad_out * xhat))
        self.bias.grad.copy_(channel_sum(grad_out))
        scale = self.weight.data.view(self.shape) * self.inv_std
        if not self.batch_statistics:  # running statistics are constants
            return grad_out * scale
        # the batch mean and variance depend on every input: subtract their share of the gradient
        count = grad_out.numel() // self.num_features
        mean_grad = (self.bias.grad / count).view(self.shape)
        proj = (self.weight.grad / count).view(self.shape)
        return (grad_out - mean_grad - xhat * proj) * scale

    def extra_repr(self):
        return f'{self.num_features}, eps={self.eps}, momentum={self.momentum}'


def channel_sum(x):
    """Sum over every dimension but dim 1. Summing the contiguous trailing dimensions first is
    several times faster on a CPU than one reduction over (0, 2, 3)."""
    return (x.flatten(2).sum(2) if x.dim() > 2 else x).sum(0)


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


class CrossEntropyLoss(Module):
    """Mean cross-entropy of logits (N, C) against class indices (N,), as torch's.

    Works on logits through log-softmax, so logits of any magnitude give a finite loss, and
    the gradient is the fused (softmax - target) / N. label_smoothing mixes the one-hot target
    with the uniform distribution, as torch's option of that name."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def forward(self, logits, targets):
        log_p = log_softmax(logits)
        self.probs, self.targets = log_p.exp(), targets
        nll = -log_p.gather(1, targets[:, None]).mean()
        if not self.label_smoothing:
            return nll
        return (1 - self.label_smoothing) * nll - self.label_smoothing * log_p.mean()

    def __call__(self, logits, targets):
        return self.forward(logits, targets)

    def backward(self):
        n, c = self.probs.shape
        eps = self.label_smoothing
        grad = self.probs - eps / c
        grad[torch.arange(n, device=grad.device), self.targets] -= 1 - eps
        return grad / n


class Adam:
    """Adam (Kingma & Ba), with optional decoupled weight decay (AdamW, Loshchilov & Hutter).

    On construction the parameters are packed into one flat buffer (each Parameter's data and
    grad become views of it), so a step is a handful of vector operations whatever the number
    of layers. Create the optimizer after moving the model to its device, as in PyTorch.

    Every 100 steps, moments too small to change a step (first below 1e-20, second below 1e-30)
    are set to zero. A weight whose gradient is exactly zero (one into a dead ReLU unit) would
    otherwise see its first moment decay into denormal floats (below 1.2e-38) and stay there: a
    third of the MLP's do after one epoch, and x86 CPUs process denormals many times slower,
    which made the default run 1.5x slower on a 2-core Intel Xeon."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError('Adam got no parameters')
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.data, self.grad = pack([p.data for p in self.params]), pack([p.grad for p in self.params])
        for p, data, grad in zip(self.params, unpack(self.data, self.params), unpack(self.grad, self.params)):
            p.data, p.grad = data, grad
        self.exp_avg = torch.zeros_like(self.data)
        self.exp_avg_sq = torch.zeros_like(self.data)
        self.steps = 0

    def zero_grad(self):
        self.grad.zero_()

    def step(self):
        beta1, beta2 = self.betas
        self.steps += 1
        if self.weight_decay:
            self.data.mul_(1 - self.lr * self.weight_decay)
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        # with betas above (0.7, 0.85), no moment falls from these bounds to a denormal in 100 steps
        if self.steps % 100 == 0:
            self.exp_avg.masked_fill_(self.exp_avg.abs() < 1e-20, 0)
            self.exp_avg_sq.masked_fill_(self.exp_avg_sq < 1e-30, 0)
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
