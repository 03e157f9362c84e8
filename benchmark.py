"""Time training three ways, in one run on one machine, and print tables.

    python benchmark.py                  # a few minutes on a 2-core CPU
    python benchmark.py --device cuda    # the same tables on a GPU

MLP (the default `Net`, batch 64, Adam 1e-3), one epoch each of:
(a) this project's from-scratch Net on in-memory tensor batches (what train.py does);
(b) the same architecture in torch.nn + autograd + torch.optim.Adam on the same batches;
(c) the original project's pipeline: torchvision's MNIST dataset with Resize/ToTensor/Normalize
    and a DataLoader (batch 64, shuffle) feeding the from-scratch model (CPU only).
CNN (the `cnn-best` recipe's network: batch 128, AdamW 3e-3 with weight decay 1e-4, label
smoothing 0.1), a fixed number of steps each of the from-scratch CNN and the same layers in
torch.nn + autograd + torch.optim.AdamW, on the same batches from the same initial weights.
Each pair alternates over several repeats and the medians are compared, so a busy machine slows
both alike; a split of one more run shows where each spends its time (forward with the loss,
backward, optimizer). Last, the full default training run (30 epochs with evaluation) against
30 torch.nn epochs, one timed after each of its epochs.
"""
import argparse
from collections import OrderedDict
import platform
import statistics
import sys
import tempfile
import time

import torch

import nn
from data import DataError, batches, extract, load_splits
from files import DATA_DIR
from train import Config, TrainingError, machine, make_config, model_options, resolve_device, train



def step_recipe(config):
    """(network options, optimisation settings) of a train.Config: what a step comparison needs."""
    return model_options(config), {k: getattr(config, k) for k in ('batch_size', 'lr', 'weight_decay', 'label_smoothing')}


MLP_CONFIG, MLP_RECIPE = step_recipe(Config())                      # the default run: Net, batch 64, Adam 1e-3
CNN_CONFIG, CNN_RECIPE = step_recipe(make_config(preset='cnn-best'))  # the cnn-best recipe's network and step


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- the two implementations of each step

def scratch_setup(name, config, recipe, device):
    model = nn.build_model(name, **config).to(device)
    optimizer = nn.Adam(model.parameters(), lr=recipe['lr'], weight_decay=recipe['weight_decay'])
    criterion = nn.CrossEntropyLoss(recipe['label_smoothing'])

    def forward(x, y):
        return criterion(model.logits(x), y)

    def backward(loss):
        model.backward(criterion.backward(), input_grad=False)

    return model, forward, backward, optimizer.step


def torch_mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def torch_cnn(channels, hidden, dropout, init):
    c1, c2 = channels
    T = torch.nn
    return T.Sequential(OrderedDict(
        conv1=T.Conv2d(1, c1, 3, padding=1), pool1=T.MaxPool2d(2), norm1=T.BatchNorm2d(c1), activation1=T.ReLU(),
        conv2=T.Conv2d(c1, c2, 3, padding=1), pool2=T.MaxPool2d(2), norm2=T.BatchNorm2d(c2), activation2=T.ReLU(),
        flatten=T.Flatten(), hidden_layer=T.Linear(c2 * 7 * 7, hidden), hidden_norm=T.BatchNorm1d(hidden),
        hidden_activation=T.ReLU(), dropout=T.Dropout(dropout), output_layer=T.Linear(hidden, 10)))


def torch_setup(name, config, recipe, device):
    """The reference: the same layers and initial weights as the from-scratch model, autograd."""
    if name == 'Net':
        model = torch_mlp()
        renames = {'first_layer': '1', 'second_layer': '3', 'output_layer': '5'}
    else:
        model, renames = torch_cnn(**config), {}
    state = nn.build_model(name, **config).state_dict()
    for old, new in renames.items():
        state = {k.replace(old, new): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing), (missing, unexpected)
    model.to(device)
    optimizer_cls = torch.optim.AdamW if recipe['weight_decay'] else torch.optim.Adam
    optimizer = optimizer_cls(model.parameters(), lr=recipe['lr'], weight_decay=recipe['weight_decay'])
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe['label_smoothing'])

    def forward(x, y):
        return criterion(model(x), y)

    def backward(loss):
        loss.backward()

    def step():
        optimizer.step()
        optimizer.zero_grad()

    return model, forward, backward, step


def run_steps(setup, name, config, recipe, batch_list, device, split=False):
    """Seconds to train on batch_list from fresh weights; with split, seconds per phase."""
    torch.manual_seed(0)
    _, forward, backward, step = setup(name, config, recipe, device)
    phases = [0.0, 0.0, 0.0]
    sync(device)
    start = time.perf_counter()
    for x, y in batch_list:
        if not split:
            loss = forward(x, y)
            backward(loss)
            step()
            continue
        for i, phase in enumerate((lambda: forward(x, y), lambda: backward(loss), step)):
            t = time.perf_counter()
            result = phase()
            sync(device)
            phases[i] += time.perf_counter() - t
            loss = result if i == 0 else loss
    sync(device)
    return phases if split else time.perf_counter() - start


def compare(title, name, config, recipe, batch_list, device, repeats):
    """Alternate the two implementations `repeats` times; print medians, ratio and phase split."""
    run_steps(scratch_setup, name, config, recipe, batch_list[:10], device)  # warm-up
    run_steps(torch_setup, name, config, recipe, batch_list[:10], device)
    times = {'scratch': [], 'torch': []}
    for _ in range(repeats):
        times['scratch'].append(run_steps(scratch_setup, name, config, recipe, batch_list, device))
        times['torch'].append(run_steps(torch_setup, name, config, recipe, batch_list, device))
    scratch, reference = statistics.median(times['scratch']), statistics.median(times['torch'])
    splits = {key: run_steps(setup, name, config, recipe, batch_list, device, split=True)
              for key, setup in (('scratch', scratch_setup), ('torch', torch_setup))}
    steps = len(batch_list)
    print(f'\n{title}: {steps} steps of batch {len(batch_list[0][1])}, median of {repeats} alternating repeats\n')
    print(f'| {"implementation":<34} | s/run | ms/step | ratio | forward | backward | optimizer |')
    print(f'|{"-" * 36}|------:|--------:|------:|--------:|---------:|----------:|')
    for key, label, seconds in (('scratch', 'from-scratch nn.py', scratch),
                                ('torch', 'torch.nn + autograd + torch.optim', reference)):
        f, b, o = (1000 * s / steps for s in splits[key])
        print(f'| {label:<34} | {seconds:5.2f} | {1000 * seconds / steps:7.2f} | {seconds / reference:4.2f}x '
              f'| {f:7.2f} | {b:8.2f} | {o:9.2f} |')
    print('(forward/backward/optimizer: ms per step, from one more run of each, timed phase by phase)')


# ---------------------------------------------------------------- MLP epoch tables

def original_pipeline_epoch(data_dir):
    import torchvision
    from torchvision import transforms
    extract(data_dir)  # torchvision reads the decompressed files offline
    dataset = torchvision.datasets.MNIST(data_dir, train=True, download=False, transform=transforms.Compose(
        [transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    model, criterion = nn.Net(), nn.CrossEntropyLoss()
    optimizer = nn.Adam(model.parameters())
    start = time.perf_counter()
    for x, y in loader:
        criterion(model.logits(x), y)
        model.backward(criterion.backward(), input_grad=False)
        optimizer.step()
    return time.perf_counter() - start


def profile_steps(name, config, recipe, batch_list, device):
    """Where a training step of each implementation spends its time, by torch operator (the
    profiler's own overhead inflates the many small ops, the copies most)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    sort = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    for label, setup in (('from-scratch nn.py', scratch_setup), ('torch.nn + autograd + torch.optim', torch_setup)):
        run_steps(setup, name, config, recipe, batch_list[:3], device)  # warm-up
        with profile(activities=activities) as prof:
            run_steps(setup, name, config, recipe, batch_list, device)
        print(f'\n{name}, {label}: {len(batch_list)} steps by operator')
        print(prof.key_averages().table(sort_by=sort, row_limit=15))


def full_run_against_torch(data_dir, device, recipe, batch_list):
    """The whole default run against 30 torch.nn epochs, one timed after each of the run's epochs
    (train's callback) and left out of the run's time: each pair sees the same state of a shared
    machine, which epochs timed only before and after a 20-second run did not (they varied by 30%)."""
    torch_epochs, paused = [], 0.0

    def torch_epoch(epoch, row):
        nonlocal paused
        tic = time.perf_counter()
        torch_epochs.append(run_steps(torch_setup, 'Net', {}, recipe, batch_list, device))
        paused += time.perf_counter() - tic

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = train(Config(progress=False, checkpoint_dir=folder, data_dir=data_dir, device=str(device)),
                       callback=torch_epoch)
    wall = time.perf_counter() - start - paused
    torch_run = sum(torch_epochs)
    print(f'\nFull default run (`python train.py`: 30 epochs, validation and test evaluation every epoch, '
          f'checkpoints; its "Finished in" includes the torch.nn epochs run between its epochs): {wall:.1f} s '
          f'wall, test accuracy {result["test"].accuracy:.4f}; 30 torch.nn epochs, one after each of its epochs: '
          f'{torch_run:.1f} s; ratio {wall / torch_run:.2f}x')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--repeats', type=int, default=5, help='runs of each implementation, alternating')
    parser.add_argument('--cnn-steps', type=int, default=60, help='CNN training steps per run')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', ... or 'auto'")
    parser.add_argument('--data-dir', default=DATA_DIR, help='folder holding MNIST/raw/ (default: data/ in the repo)')
    parser.add_argument('--skip-mlp', action='store_true', help='skip the MLP epoch table')
    parser.add_argument('--skip-cnn', action='store_true', help='skip the CNN step table')
    parser.add_argument('--skip-original', action='store_true', help='skip (c), the slow one')
    parser.add_argument('--skip-full-run', action='store_true', help='skip timing the 30-epoch default run')
    parser.add_argument('--profile', action='store_true', help='also print operator profiles of the steps of both implementations')
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
        images, labels = load_splits(args.data_dir, device=device)['train']
    except (DataError, TrainingError) as e:
        sys.exit(f'error: {e}')

    print(f'Machine: {machine(device)}, torch {torch.__version__}, Python {platform.python_version()}')
    torch.manual_seed(0)
    epoch = list(batches(images, labels, MLP_RECIPE['batch_size'], shuffle=True))
    if not args.skip_mlp:
        compare('MLP (Net), one epoch', 'Net', MLP_CONFIG, MLP_RECIPE, epoch, device, args.repeats)
        if not args.skip_original and device.type == 'cpu':
            seconds = original_pipeline_epoch(args.data_dir)
            print(f'\n(c) original pipeline (torchvision MNIST + DataLoader, from-scratch Net): {seconds:.2f} s/epoch')
        if args.profile:
            profile_steps('Net', MLP_CONFIG, MLP_RECIPE, epoch[:300], device)
    if not args.skip_cnn:
        cnn_batches = list(batches(images, labels, CNN_RECIPE['batch_size'], shuffle=True))[:args.cnn_steps]
        compare('CNN (cnn-best network)', 'CNN', CNN_CONFIG, CNN_RECIPE, cnn_batches, device, args.repeats)
        if args.profile:
            profile_steps('CNN', CNN_CONFIG, CNN_RECIPE, cnn_batches, device)

    if not args.skip_full_run:
        full_run_against_torch(args.data_dir, device, MLP_RECIPE, epoch)


if __name__ == '__main__':
    main()
