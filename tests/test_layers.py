"""The convolutional layers, batch norm, dropout and the CNN against torch's autograd, in float64."""
import pytest
import torch
import torch.nn.functional as F

import internals
import nn
from support import check_layer, rel_err

pytestmark = pytest.mark.usefixtures('float64')


@pytest.mark.parametrize('n, c_in, c_out, size, k, stride, padding', [
    (2, 1, 4, 28, 3, 1, 1),     # the CNN's first layer
    (3, 3, 5, 7, 3, 2, 1),      # stride and padding, odd size
    (1, 2, 3, 9, 5, 3, 0),      # large kernel, stride 3, no padding
    (2, 4, 2, 6, 1, 1, 0),      # 1x1 convolution
    (2, 2, 3, 5, 2, 2, 2),      # padding wider than half the kernel
])
@pytest.mark.parametrize('chunk_rows', [nn.Conv2d.CHUNK_ROWS, 7])  # 7: the input gradient in many chunks
def test_conv2d(n, c_in, c_out, size, k, stride, padding, chunk_rows):
    layer = nn.Conv2d(c_in, c_out, k, stride, padding, dtype=torch.float64)
    layer.CHUNK_ROWS = chunk_rows
    layer.bias.data.normal_()
    check_layer(layer, torch.randn(n, c_in, size, size + 1),
                lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), [layer.weight, layer.bias])


def test_conv2d_without_input_grad_gives_the_same_parameter_grads():
    layer = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    x = torch.randn(2, 2, 6, 6)
    g = torch.randn_like(layer(x))
    layer.backward(g)
    expected = [p.grad.clone() for p in layer.parameters()]
    assert layer.backward(g, input_grad=False) is None
    assert all(torch.equal(p.grad, e) for p, e in zip(layer.parameters(), expected))


def test_conv2d_input_errors():
    with pytest.raises(ValueError, match=r'expects input \(N, 3, H, W\), got \(2, 1, 8, 8\)'):
        nn.Conv2d(3, 4, 3)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match='smaller than the kernel'):
        nn.Conv2d(1, 1, 5)(torch.randn(1, 1, 3, 3))


@pytest.mark.parametrize('shape, k, stride', [((2, 3, 8, 8), 2, None), ((1, 2, 7, 9), 2, None),
                                              ((2, 1, 7, 7), 3, 2), ((1, 2, 6, 5), 3, 1)])
def test_maxpool2d(shape, k, stride):
    # (7, 7) with k 3 stride 2 and k 3 stride 1 have overlapping windows: their gradients add up
    check_layer(nn.MaxPool2d(k, stride), torch.randn(shape), lambda x: F.max_pool2d(x, k, stride))


@pytest.mark.parametrize('k, stride', [(2, None), (3, 2), (3, 1)])
def test_maxpool2d_ties_go_to_the_first_maximum_as_torchs(k, stride):
    """Flat background makes ties common (equal conv outputs): the gradient goes to the first
    maximum in row-major order, once, as PyTorch's."""
    x = torch.randint(0, 3, (2, 3, 8, 7)).double()
    check_layer(nn.MaxPool2d(k, stride), x, lambda x: F.max_pool2d(x, k, stride))


@pytest.mark.parametrize('layer_cls, shape', [(nn.BatchNorm1d, (6, 5)), (nn.BatchNorm2d, (3, 4, 5, 7)),
                                              (nn.BatchNorm2d, (1, 2, 3, 3))])
def test_batchnorm_train_and_eval(layer_cls, shape):
    c = shape[1]
    layer = layer_cls(c, dtype=torch.float64)
    layer.weight.data.normal_()
    layer.bias.data.normal_()
    mean, var = torch.randn(c), torch.rand(c) + 0.5
    layer.running_mean.copy_(mean)
    layer.running_var.copy_(var)
    x = torch.randn(shape) * 3 + 2

    def reference(training):
        running = [mean.clone(), var.clone()]
        return running, lambda x, w, b: F.batch_norm(x, *running, w, b, training=training, momentum=0.1, eps=1e-5)

    running, ref = reference(True)
    check_layer(layer, x, ref, [layer.weight, layer.bias])
    assert rel_err(layer.running_mean, running[0]) < 1e-12 and rel_err(layer.running_var, running[1]) < 1e-12
    layer.eval()
    running, ref = reference(False)
    layer.running_mean.copy_(mean)
    layer.running_var.copy_(var)
    assert rel_err(layer(x), ref(x, layer.weight.data, layer.bias.data)) < 1e-12
    assert torch.equal(layer.running_mean, mean)  # evaluation never updates the statistics
    with pytest.raises(RuntimeError, match='needs a forward pass in training mode'):
        layer.backward(torch.randn_like(x))  # evaluation dropped the training pass's caches


def test_batchnorm_buffers_are_in_the_state_dict_and_move_with_the_model():
    model = nn.CNN(channels=(2, 3), hidden=4)
    state = model.state_dict()
    for name in ('norm1.running_mean', 'norm1.running_var', 'norm2.running_var', 'hidden_norm.running_mean'):
        assert name in state
    model(torch.randn(4, 1, 28, 28))  # training mode: the statistics move
    assert not torch.equal(model.state_dict()['norm1.running_mean'], state['norm1.running_mean'])
    fresh = nn.CNN(channels=(2, 3), hidden=4).load_state_dict(model.state_dict())
    assert torch.equal(fresh.norm1.running_var, model.norm1.running_var)
    fresh.to(dtype=torch.float32)
    assert fresh.norm1.running_mean.dtype == torch.float32


def test_batchnorm_rejects_a_single_value_per_channel_in_training():
    with pytest.raises(ValueError, match='more than one value per channel'):
        nn.BatchNorm1d(3)(torch.randn(1, 3))
    nn.BatchNorm1d(3).eval()(torch.randn(1, 3))  # fine in evaluation


def test_dropout_train_and_eval():
    layer = nn.Dropout(0.4)
    x = torch.randn(200, 50)
    check_layer(layer, x, lambda x: x * layer.saved['mask'])  # the reference applies the mask forward drew
    out, mask = layer(x), layer.saved['mask']
    kept = (mask != 0).double().mean().item()
    assert abs(kept - 0.6) < 0.03 and torch.allclose(out[mask != 0], x[mask != 0] / 0.6)
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match=r'dropout probability must be in \[0, 1\)'):
        nn.Dropout(1.0)


def test_dropout_backward_uses_the_forward_mask():
    layer = nn.Dropout(0.5)
    x = torch.randn(30, 20)
    out = layer(x)
    g = torch.randn_like(out)
    assert torch.equal(layer.backward(g), g * layer.saved['mask'])
    assert torch.equal(out == 0, layer.saved['mask'] == 0)


def reference_cnn_logits(model, x, *params, training=True):
    conv1_w, conv1_b, n1_w, n1_b, conv2_w, conv2_b, n2_w, n2_b, h_w, h_b, hn_w, hn_b, o_w, o_b = params
    stats = [t.clone() for m in (model.norm1, model.norm2, model.hidden_norm)
             for t in (m.running_mean, m.running_var)]
    h = F.max_pool2d(F.conv2d(x, conv1_w, conv1_b, padding=1), 2)
    h = torch.relu(F.batch_norm(h, stats[0], stats[1], n1_w, n1_b, training))
    h = F.max_pool2d(F.conv2d(h, conv2_w, conv2_b, padding=1), 2)
    h = torch.relu(F.batch_norm(h, stats[2], stats[3], n2_w, n2_b, training))
    h = torch.relu(F.batch_norm(F.linear(h.flatten(1), h_w, h_b), stats[4], stats[5], hn_w, hn_b, training))
    if training:
        h = h * model.dropout.saved['mask']
    return F.linear(h, o_w, o_b)


def test_cnn_end_to_end_against_autograd():
    torch.manual_seed(0)
    model = nn.CNN(channels=(3, 4), hidden=6, dropout=0.3, dtype=torch.float64)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = torch.randn(5, 1, 28, 28), torch.randint(0, 10, (5,))
    reference_model = nn.CNN(channels=(3, 4), hidden=6, dtype=torch.float64).load_state_dict(model.state_dict())
    torch.manual_seed(1)
    loss = criterion(model.logits(x), y)
    grad_x = model.backward(criterion.backward())
    reference_model.dropout = model.dropout  # same mask
    xr = x.clone().requires_grad_()
    pr = [p.data.clone().requires_grad_() for p in model.parameters()]
    ref = F.cross_entropy(reference_cnn_logits(reference_model, xr, *pr), y,
                          label_smoothing=0.1)
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-10
    assert rel_err(grad_x, xr.grad) < 1e-6
    for (name, p), r in zip(model.named_parameters(), pr):
        # biases just before a batch norm have a zero gradient in training: rounding noise on both sides
        assert (p.grad - r.grad).norm() <= 1e-6 * r.grad.norm().clamp_min(1e-9), name
    expected = [p.grad.clone() for p in model.parameters()]
    torch.manual_seed(1)  # the same dropout mask
    criterion(model.logits(x), y)
    assert model.backward(criterion.backward(), input_grad=False) is None
    assert all(torch.allclose(p.grad, e) for p, e in zip(model.parameters(), expected))


def test_cnn_in_evaluation_matches_autograds_forward_and_keeps_nothing():
    torch.manual_seed(0)
    model = nn.CNN(channels=(3, 4), hidden=6, dropout=0.3, dtype=torch.float64)
    x = torch.randn(5, 1, 28, 28)
    model.logits(x)  # training: moves the running statistics away from their start
    model.eval()
    logits = model.logits(x)
    params = [p.data for p in model.parameters()]
    assert rel_err(logits, reference_cnn_logits(model, x, *params, training=False)) < 1e-12
    assert all(layer.saved is None for layer in model.modules())
    with pytest.raises(RuntimeError, match='which was an evaluation'):
        model.backward(torch.randn_like(logits))


def test_cnn_builds_from_its_config_and_accepts_every_input_layout():
    model = nn.CNN(channels=(4, 8), hidden=16, dropout=0.2).eval()
    clone = nn.build_model('CNN', **model.config).load_state_dict(model.state_dict()).eval()
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    probs = model(images)
    assert probs.shape == (3, 10) and torch.allclose(probs.sum(1), torch.ones(3))
    assert torch.equal(clone(images), probs)
    assert torch.allclose(model(images.reshape(3, 784)), probs) and torch.allclose(model(images[:, 0]), probs)
    assert [name for name, _ in model.children()][-1] == 'output_activation'
    model.train().logits(images[:, 0])
    assert model.backward(torch.ones(3, 10)).shape == (3, 28, 28)  # the gradient comes back in the input's layout


@pytest.mark.parametrize('layer, shape', [(nn.Conv2d(2, 3, 3, padding=1), (2, 2, 6, 5)), (nn.MaxPool2d(2), (2, 3, 6, 6)),
                                          (nn.BatchNorm2d(3), (4, 3, 5, 5)), (nn.BatchNorm1d(5), (8, 5)),
                                          (nn.Dropout(0.25), (4, 6)), (nn.Linear(5, 4), (3, 5))])
def test_the_notebooks_finite_difference_check_of_each_layer(layer, shape):
    layer.to(dtype=torch.float64)
    table = internals.check_layer(layer, torch.randn(shape))
    assert set(table.index) == {name for name, _ in layer.named_parameters()} | {'input'}
    assert table['finite differences: relative error'].max() < 1e-7


def test_the_finite_difference_check_catches_a_wrong_backward():
    class HalfReLU(nn.ReLU):  # backward off by a factor of 2
        def backward(self, grad_out, input_grad=True):
            return super().backward(grad_out, input_grad) / 2

    assert internals.check_layer(HalfReLU(), torch.randn(4, 6)).loc['input', 'finite differences: relative error'] > 0.4


def test_the_notebooks_gradient_check_of_a_small_cnn():
    """Every tensor against finite differences (the biases before a batch norm have none: NaN) and autograd,
    with dropout on: every forward pass of the check draws the same mask."""
    torch.manual_seed(0)
    model = nn.CNN(channels=(2, 3), hidden=5, dropout=0.3, dtype=torch.float64)
    table = internals.check_gradients(model, nn.CrossEntropyLoss(0.1), torch.randn(3, 1, 28, 28),
                                      torch.tensor([1, 2, 3]), entries=5)
    relative = table['finite differences: relative error']
    assert set(relative[relative.isna()].index) == {'conv1.bias', 'conv2.bias', 'hidden_layer.bias'}
    assert relative.max() < 1e-7 and table['autograd: largest |difference|'].max() < 1e-12
    ours, autograd = table.attrs['loss']
    assert abs(ours - autograd) < 1e-12
