"""The from-scratch library against torch's autograd, torch.nn and torch.optim, in float64."""
import pytest
import torch
import torch.nn.functional as F

import nn
from support import check_layer, rel_err

pytestmark = pytest.mark.usefixtures('float64')


@pytest.mark.parametrize('n, fan_in, fan_out', [(1, 1, 1), (5, 3, 7), (64, 784, 256), (13, 128, 10)])
@pytest.mark.parametrize('init', nn.INITS)
def test_linear(n, fan_in, fan_out, init):
    layer = nn.Linear(fan_in, fan_out, init=init, dtype=torch.float64)
    layer.bias.data.normal_()
    check_layer(layer, torch.randn(n, fan_in), F.linear, [layer.weight, layer.bias])


def test_linear_without_input_grad_gives_the_same_parameter_grads():
    layer = nn.Linear(6, 4, dtype=torch.float64)
    x, g = torch.randn(3, 6), torch.randn(3, 4)
    layer(x)
    layer.backward(g)
    expected = [p.grad.clone() for p in layer.parameters()]
    assert layer.backward(g, input_grad=False) is None
    assert all(torch.equal(p.grad, e) for p, e in zip(layer.parameters(), expected))


@pytest.mark.parametrize('shape', [(1, 1), (4, 9), (2, 3, 5)])
def test_relu(shape):
    x = torch.randn(shape)
    x.view(-1)[0] = 0.0  # the kink: torch's derivative there is 0
    check_layer(nn.ReLU(), x, torch.relu)


@pytest.mark.parametrize('shape', [(1, 1), (6, 10), (3, 4, 7)])
def test_softmax(shape):
    check_layer(nn.Softmax(), torch.randn(shape) * 5, lambda x: torch.softmax(x, -1))


@pytest.mark.parametrize('shape', [(2, 1, 28, 28), (3, 784), (1, 2, 3, 4)])
def test_flatten(shape):
    check_layer(nn.Flatten(), torch.randn(shape), lambda x: x.reshape(x.shape[0], -1))


def test_sequential_numbered_and_named():
    seq = nn.Sequential(nn.Linear(5, 4, dtype=torch.float64), nn.ReLU(), nn.Linear(4, 3, dtype=torch.float64))
    assert [name for name, _ in seq.named_parameters()] == ['0.weight', '0.bias', '2.weight', '2.bias']

    def reference(x, w0, b0, w2, b2):
        return F.linear(torch.relu(F.linear(x, w0, b0)), w2, b2)
    check_layer(seq, torch.randn(6, 5), reference, seq.parameters())


def reference_net_logits(x, *params):
    w1, b1, w2, b2, w3, b3 = params
    h = torch.relu(F.linear(x.reshape(x.shape[0], -1), w1, b1))
    return F.linear(torch.relu(F.linear(h, w2, b2)), w3, b3)


@pytest.mark.parametrize('input_shape', [(8, 1, 28, 28), (3, 784)])
def test_net_outputs_the_softmax_of_its_logits_and_backward_refuses_that_pass(input_shape):
    net = nn.Net(dtype=torch.float64)
    x = torch.randn(input_shape)
    probs = net(x)
    assert rel_err(probs, torch.softmax(reference_net_logits(x, *[p.data for p in net.parameters()]), -1)) < 1e-12
    with pytest.raises(RuntimeError, match=r'last pass, which was model\(x\), through the softmax'):
        net.backward(torch.randn_like(probs))  # a gradient of the probabilities would be taken for the logits'


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_net_training_path_logits_and_fused_cross_entropy(label_smoothing):
    net, criterion = nn.Net(init='he', dtype=torch.float64), nn.CrossEntropyLoss(label_smoothing)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    loss = criterion(net.logits(x), y)
    grad_x = net.backward(criterion.backward())
    xr = x.clone().requires_grad_()
    pr = [p.data.clone().requires_grad_() for p in net.parameters()]
    ref = F.cross_entropy(reference_net_logits(xr, *pr), y, label_smoothing=label_smoothing)
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-12
    assert rel_err(grad_x, xr.grad) < 1e-6
    for p, r in zip(net.parameters(), pr):
        assert rel_err(p.grad, r.grad) < 1e-6
    # skipping the input gradient changes no parameter gradient
    expected = [p.grad.clone() for p in net.parameters()]
    criterion(net.logits(x), y)
    assert net.backward(criterion.backward(), input_grad=False) is None
    assert all(torch.allclose(p.grad, e, rtol=0, atol=0) for p, e in zip(net.parameters(), expected))


@pytest.mark.parametrize('scale', [1.0, 1e4])
def test_cross_entropy_is_stable_for_huge_logits(scale):
    logits = torch.randn(32, 10) * scale
    y = torch.randint(0, 10, (32,))
    criterion = nn.CrossEntropyLoss()
    loss = criterion(logits, y)
    grad = criterion.backward()
    lr = logits.clone().requires_grad_()
    ref = F.cross_entropy(lr, y)
    ref.backward()
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert abs(loss.item() - ref.item()) <= 1e-9 * max(1.0, abs(ref.item()))
    assert rel_err(grad, lr.grad) < 1e-6


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_cross_entropy_target_minus_one_is_the_uniform_distribution(label_smoothing):
    """-1 rows (outlier exposure) against torch's soft targets: uniform for them, the smoothed
    one-hot for the others, the mean over all rows; loss and gradient."""
    logits = torch.randn(12, 10) * 3
    y = torch.randint(0, 10, (12,))
    y[[0, 4, 5, 11]] = -1
    criterion = nn.CrossEntropyLoss(label_smoothing)
    loss = criterion(logits, y)
    grad = criterion.backward()
    soft = F.one_hot(y.clamp(min=0), 10).double() * (1 - label_smoothing) + label_smoothing / 10
    soft[y < 0] = 1 / 10
    lr = logits.clone().requires_grad_()
    ref = F.cross_entropy(lr, soft)
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-12
    assert rel_err(grad, lr.grad) < 1e-10
    all_outliers = nn.CrossEntropyLoss(label_smoothing)(logits, torch.full((12,), -1))
    assert abs(all_outliers.item() - (-logits.log_softmax(1).mean()).item()) < 1e-12


def test_cross_entropy_in_float32_with_huge_logits():
    logits = (torch.randn(8, 10) * 1e4).float()
    criterion = nn.CrossEntropyLoss()
    assert torch.isfinite(criterion(logits, torch.randint(0, 10, (8,))))
    assert torch.isfinite(criterion.backward()).all()


@pytest.mark.parametrize('weight_decay', [0.0, 0.05])
def test_adam_matches_torch_optim(weight_decay):
    net = nn.Net(dtype=torch.float64)
    initial = net.first_layer.weight.data.clone()
    ref_params = [p.data.clone().requires_grad_() for p in net.parameters()]
    ours = nn.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    ref_cls = torch.optim.AdamW if weight_decay else torch.optim.Adam
    ref = ref_cls(ref_params, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss()
    for step in range(6):
        x, y = torch.randn(10, 784), torch.randint(0, 10, (10,))
        criterion(net.logits(x), y)
        net.backward(criterion.backward())
        for p, r in zip(net.parameters(), ref_params):
            r.grad = p.grad.clone()
        ours.step()
        ref.step()
    for p, r in zip(net.parameters(), ref_params):
        assert rel_err(p.data, r.detach()) < 1e-6
    assert rel_err(net.first_layer.weight.data, initial) > 1e-3  # the weights did move
    assert ours.steps == 6


def test_adam_moments_of_a_weight_that_stops_learning_go_to_zero_not_denormal():
    """A weight whose gradient becomes exactly zero (a dead ReLU unit's) still moves as in
    torch.optim.Adam, but its moments end at zero rather than in the denormal floats that slow
    a CPU down (nn.Adam's docstring)."""
    start = torch.randn(1000, dtype=torch.float32)
    ours, ref = nn.Parameter(start.clone()), start.clone().requires_grad_()
    adam, ref_adam = nn.Adam([ours], betas=(0.9, 0.95)), torch.optim.Adam([ref], betas=(0.9, 0.95))
    for step in range(3000):
        grad = torch.randn(1000, dtype=torch.float32) * (step < 10)
        ours.grad.copy_(grad)
        ref.grad = grad.clone()
        adam.step()
        ref_adam.step()
    assert rel_err(ours.data, ref.detach()) < 1e-6
    for moment in adam.exp_avg, adam.exp_avg_sq:
        assert not moment.any(), f'moments left at up to {moment.abs().max().item():.1e}'


def test_adam_state_round_trip_continues_identically():
    def make():
        torch.manual_seed(1)
        net = nn.Net(dtype=torch.float64)
        return net, nn.Adam(net.parameters())

    def step(net, opt, seed):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(4, 784, generator=g), torch.randint(0, 10, (4,), generator=g)
        criterion = nn.CrossEntropyLoss()
        criterion(net.logits(x), y)
        net.backward(criterion.backward())
        opt.step()

    a, opt_a = make()
    for s in range(3):
        step(a, opt_a, s)
    b, opt_b = make()
    for s in range(2):
        step(b, opt_b, s)
    c, opt_c = make()
    c.load_state_dict(b.state_dict())
    opt_c.load_state_dict(opt_b.state_dict())
    step(c, opt_c, 2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_net_layout_names_and_parameter_count():
    net = nn.Net()
    assert [name for name, _ in net.children()] == [
        'flatten', 'first_layer', 'first_activation', 'second_layer', 'second_activation',
        'output_layer', 'output_activation']
    assert net.num_parameters() == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 == 235_146
    assert list(net.state_dict()) == ['first_layer.weight', 'first_layer.bias', 'second_layer.weight',
                                      'second_layer.bias', 'output_layer.weight', 'output_layer.bias']
    assert net.state_dict()['first_layer.weight'].shape == (256, 784)
    text = repr(net)
    assert '(first_layer): Linear(in_features=784, out_features=256' in text
    assert '(output_activation): Softmax()' in text


def test_net_outputs_probabilities_for_both_input_layouts():
    net = nn.Net(dtype=torch.float32)
    images = torch.rand(5, 1, 28, 28, dtype=torch.float32) * 2 - 1
    probs = net(images)
    assert probs.shape == (5, 10) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(5, dtype=torch.float32))
    assert torch.allclose(net(images.reshape(5, 784)), probs)


def test_wrong_input_shape_or_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match=r'expects input \(N, 784\), got \(3, 10\)'):
        nn.Net()(torch.randn(3, 10))
    with pytest.raises(ValueError, match='input is torch.float32 but the layer is torch.float64'):
        nn.Net()(torch.randn(3, 784, dtype=torch.float32))


def test_state_dict_round_trip_and_mismatch_errors():
    a, b = nn.Net(), nn.Net(init='he')
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 784)
    assert torch.equal(a(x), b(x))
    state = a.state_dict()
    state['first_layer.weight'] += 1  # a copy: the model is untouched
    assert not torch.equal(state['first_layer.weight'], a.first_layer.weight.data)
    del state['output_layer.bias']
    state['extra'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['output_layer.bias'\], unexpected \['extra'\]"):
        a.load_state_dict(state)
    bad = a.state_dict()
    bad['second_layer.weight'] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match='second_layer.weight: checkpoint'):
        a.load_state_dict(bad)


def test_load_state_dict_keeps_optimizer_views_live():
    net = nn.Net()
    opt = nn.Adam(net.parameters())
    net.load_state_dict(nn.Net(init='he').state_dict())
    assert net.first_layer.weight.data.data_ptr() == opt.data.data_ptr()
    assert torch.equal(opt.data[:784 * 256].view(256, 784), net.first_layer.weight.data)


def test_train_eval_and_to():
    net = nn.Net(dtype=torch.float32).eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.to(dtype=torch.float64)
    assert all(p.data.dtype == p.grad.dtype == torch.float64 for p in net.parameters())
    assert net(torch.randn(2, 784)).dtype == torch.float64


def test_backward_overwrites_gradients_and_never_changes_weights():
    """No zero_grad: a second backward writes the same gradients, it does not add to them."""
    net = nn.Net()
    before = net.state_dict()
    criterion = nn.CrossEntropyLoss()
    criterion(net.logits(torch.randn(4, 784)), torch.tensor([1, 2, 3, 4]))
    grad = criterion.backward()
    net.backward(grad)
    first = [p.grad.clone() for p in net.parameters()]
    net.backward(grad)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(torch.equal(p.grad, f) for p, f in zip(net.parameters(), first))


def test_build_model_rejects_unknown_architecture():
    assert isinstance(nn.build_model('Net', init='he'), nn.Net)
    with pytest.raises(ValueError, match="unknown architecture 'ResNet'"):
        nn.build_model('ResNet')


def test_adam_refuses_to_step_parameters_moved_after_it_was_created():
    net = nn.Net()
    opt = nn.Adam(net.parameters())
    net.to(dtype=torch.float32)  # new tensors: opt would update a buffer the model no longer uses
    with pytest.raises(RuntimeError, match=r'create the optimizer after model.to\(...\)'):
        opt.step()
    nn.Adam(net.parameters()).step()  # created after the move: fine


def test_the_loss_is_not_a_layer():
    """CrossEntropyLoss takes (logits, targets) and a no-argument backward: not the Module
    contract, so a model holding one does not collect it as a child."""
    model = nn.Sequential(nn.Linear(3, 2))
    model.criterion = nn.CrossEntropyLoss()
    assert not isinstance(model.criterion, nn.Module)
    assert [name for name, _ in model.children()] == ['0']


def test_evaluation_between_logits_and_backward_is_a_clear_error_not_a_wrong_gradient():
    """The trap: a training pass, an evaluation (as train.py does after an epoch), then the
    training pass's backward. The evaluation kept nothing and dropped the training caches, so
    backward refuses; a fresh logits pass then gives autograd's gradient."""
    from metrics import evaluate
    net, criterion = nn.Net(dtype=torch.float64), nn.CrossEntropyLoss()
    x, y = torch.randn(16, 784), torch.randint(0, 10, (16,))
    criterion(net.logits(x), y)
    evaluate(net, torch.randn(50, 784), torch.randint(0, 10, (50,)))
    assert net.training and all(layer.saved is None for layer in net.modules())
    with pytest.raises(RuntimeError, match='which was an evaluation: call model.logits'):
        net.backward(criterion.backward())
    criterion(net.logits(x), y)
    net.backward(criterion.backward())
    pr = [p.data.clone().requires_grad_() for p in net.parameters()]
    F.cross_entropy(reference_net_logits(x, *pr), y).backward()
    assert all(rel_err(p.grad, r.grad) < 1e-6 for p, r in zip(net.parameters(), pr))


@pytest.mark.parametrize('layer', [nn.Linear(4, 4), nn.ReLU(), nn.Softmax(), nn.Flatten(), nn.BatchNorm1d(4),
                                   nn.Dropout(0.5), nn.Sequential(nn.ReLU(), nn.Linear(4, 4))],
                         ids=lambda layer: type(layer).__name__)
def test_every_layer_takes_input_grad(layer):
    """One contract: backward(grad_out, input_grad=True) returns dL/dx, or None without it."""
    layer.to(dtype=torch.float64)
    out = layer(torch.randn(5, 4))
    g = torch.randn_like(out)
    assert layer.backward(g).shape == (5, 4)
    assert layer.backward(g, input_grad=False) is None


def test_batchnorm_first_in_a_sequential_back_propagates():
    seq = nn.Sequential(nn.BatchNorm1d(4, dtype=torch.float64), nn.Linear(4, 3, dtype=torch.float64))

    def reference(x, bn_w, bn_b, w, b):
        return F.linear(F.batch_norm(x, None, None, bn_w, bn_b, training=True), w, b)
    x, g = torch.randn(6, 4), torch.randn(6, 3)
    check_layer(seq, x, reference, seq.parameters())
    seq(x)
    seq.backward(g)
    expected = [p.grad.clone() for p in seq.parameters()]
    assert seq.backward(g, input_grad=False) is None  # the parameters' gradients only, the same ones
    assert all(torch.equal(p.grad, e) for p, e in zip(seq.parameters(), expected))
