"""The library on a CUDA GPU gives what it gives on the CPU. Marked `cuda`: skipped, with the
reason, where torch sees no GPU (`pytest -m cuda` runs only these)."""
import pytest
import torch

import nn
import train
from files import DATA_DIR
from support import rel_err

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason='needs a CUDA GPU (torch.cuda.is_available() is False)')]


def on_both(make, x):
    """Forward and backward of the same layer (same weights) on the CPU and on the GPU, in float64."""
    results = []
    for device in ('cpu', 'cuda'):
        torch.manual_seed(0)
        layer = make().to(device, torch.float64)
        out = layer(x.to(device, torch.float64))
        grad_in = layer.backward(torch.ones_like(out) * torch.arange(out.shape[-1], device=device))
        results.append([out.cpu(), grad_in.cpu()] + [p.grad.cpu() for p in layer.parameters()])
    return results


@pytest.mark.parametrize('make, shape', [
    (lambda: nn.Linear(20, 7), (5, 20)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 9, 8)),
    (lambda: nn.Conv2d(2, 3, 3, stride=2), (2, 2, 9, 9)),
    (lambda: nn.MaxPool2d(2), (2, 3, 8, 7)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda: nn.BatchNorm1d(6), (8, 6)),
    (lambda: nn.ReLU(), (4, 9)),
    (lambda: nn.Softmax(), (4, 9)),
], ids=['linear', 'conv', 'conv-stride', 'maxpool', 'batchnorm2d', 'batchnorm1d', 'relu', 'softmax'])
def test_layer_forward_and_backward_on_cuda_match_the_cpu(make, shape):
    cpu, cuda = on_both(make, torch.randn(shape))
    for a, b in zip(cpu, cuda):
        assert rel_err(b, a) < 1e-10


@pytest.mark.parametrize('name, config', [('Net', {}), ('CNN', {'channels': (4, 8), 'hidden': 16})])
def test_training_steps_on_cuda_match_the_cpu(name, config):
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    weights = []
    for device in ('cpu', 'cuda'):
        torch.manual_seed(0)
        model = nn.build_model(name, **config).to(device, torch.float64)
        optimizer, criterion = nn.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4), nn.CrossEntropyLoss(0.1)
        for _ in range(3):
            criterion(model.logits(x.to(device, torch.float64)), y.to(device))
            model.backward(criterion.backward(), input_grad=False)
            optimizer.step()
        weights.append({k: v.cpu() for k, v in model.state_dict().items()})
    assert all(rel_err(weights[1][k], v) < 1e-8 for k, v in weights[0].items())


def test_a_dry_run_trains_on_cuda(tmp_path):
    result = train.train(device='cuda', dry_run=True, data_dir=DATA_DIR, checkpoint_dir=tmp_path, progress=False)
    assert result['history']['train_loss'].notna().all()
