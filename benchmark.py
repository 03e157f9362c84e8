"""Time one training epoch three ways, in one run on one machine, and print a table.

    python benchmark.py                  # about a minute on a 2-core CPU

(a) this project's from-scratch Net on in-memory tensor batches (what train.py does);
(b) the same architecture in torch.nn + autograd + torch.optim.Adam on the same batches;
(c) the original project's pipeline: torchvision's MNIST dataset with Resize/ToTensor/Normalize
    and a DataLoader (batch 64, shuffle) feeding the from-scratch model.
(a) and (b) alternate over several repeats and the medians are compared, so a busy machine
slows both alike. It also times the full default training run (30 epochs with evaluation).
"""
import argparse
import platform
import statistics
import tempfile
import time

import torch

import nn
from data import batches, extract, load_splits
from train import Config, Run, train, train_epoch


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return (f'{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, '
            f'Python {platform.python_version()}')


def from_scratch_epoch(images, labels):
    model = nn.Net()
    optimizer = nn.Adam(model.parameters())
    start = time.perf_counter()
    train_epoch(Run(Config(schedule='constant', progress=False), model, optimizer), images, labels)
    return time.perf_counter() - start


def torch_nn_epoch(images, labels):
    """The reference: same layers, same Xavier initialisation, same batches, autograd."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    model.load_state_dict({k.replace('first_layer', '1').replace('second_layer', '3').replace('output_layer', '5'): v
                           for k, v in nn.Net().state_dict().items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for x, y in batches(images, labels, 64, shuffle=True):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start


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


def profile_steps(images, labels, steps=300):
    """Where a from-scratch training step spends its time, by torch operator."""
    from torch.profiler import ProfilerActivity, profile
    model = nn.Net()
    optimizer = nn.Adam(model.parameters())
    n = steps * 64
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(Run(Config(schedule='constant', progress=False), model, optimizer), images[:n], labels[:n])
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=15))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--repeats', type=int, default=5, help='epochs of (a) and of (b), alternating')
    parser.add_argument('--data-dir', default='data', help='folder holding MNIST/raw/')
    parser.add_argument('--skip-original', action='store_true', help='skip (c), the slow one')
    parser.add_argument('--skip-full-run', action='store_true', help='skip timing the 30-epoch default run')
    parser.add_argument('--profile', action='store_true', help='also print an operator profile of (a)')
    args = parser.parse_args()

    print(f'Machine: {machine()}')
    images, labels = load_splits(args.data_dir)['train']
    torch.manual_seed(0)
    times = {'a': [], 'b': []}
    from_scratch_epoch(images[:6400], labels[:6400]), torch_nn_epoch(images[:6400], labels[:6400])  # warm-up
    for _ in range(args.repeats):
        times['a'].append(from_scratch_epoch(images, labels))
        times['b'].append(torch_nn_epoch(images, labels))
    rows = [('(a) from-scratch nn.py, tensor batches', statistics.median(times['a'])),
            ('(b) torch.nn + autograd + torch.optim.Adam', statistics.median(times['b']))]
    if not args.skip_original:
        rows.append(('(c) original: torchvision MNIST + DataLoader', original_pipeline_epoch(args.data_dir)))

    base = rows[0][1]
    print(f'\nOne epoch of {len(labels):,} images, batch 64 (median of {args.repeats} for (a) and (b)):\n')
    print(f'| {"pipeline":<46} | s/epoch | ratio to (a) |')
    print(f'|{"-" * 48}|--------:|-------------:|')
    for name, seconds in rows:
        print(f'| {name:<46} | {seconds:7.2f} | {seconds / base:11.2f}x |')

    if not args.skip_full_run:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            result = train(Config(progress=False, checkpoint_dir=folder, data_dir=args.data_dir))
        print(f'\nFull default run (`python train.py`: 30 epochs, validation and test evaluation every epoch, '
              f'checkpoints): {time.perf_counter() - start:.1f} s wall, test accuracy {result["test"].accuracy:.4f}')
    if args.profile:
        profile_steps(images, labels)


if __name__ == '__main__':
    main()
