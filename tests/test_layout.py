"""The project's structure: which module may import which, what inference loads, and how long a function is."""
import ast
import subprocess
import sys

import pytest

from files import ROOT

# Each module's floor: a module imports only modules on lower floors, so there is no circle and no import
# running back up. A new module gets a floor here.
FLOORS = {
    'nn': 1, 'files': 1, 'preprocess': 1,
    'checkpoint': 2, 'metrics': 2, 'data': 2, 'my_digits': 2, 'segment': 2,
    'predict': 3, 'train': 3,
    'internals': 4,
    'plots': 4, 'experiments': 4, 'benchmark': 4,
    'evaluate': 5, 'test_mnist_tkinter': 5,
}
MAX_FUNCTION_LINES = 50


def modules():
    return sorted(path for path in ROOT.glob('*.py'))


def project_imports(path):
    """The project's modules that `path` imports, anywhere in the file (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split('.')[0])
    return found & set(FLOORS)


def test_every_module_has_a_floor():
    assert sorted(p.stem for p in modules()) == sorted(FLOORS)


@pytest.mark.parametrize('path', modules(), ids=lambda p: p.name)
def test_imports_only_run_down(path):
    upward = {name: FLOORS[name] for name in project_imports(path) if FLOORS[name] >= FLOORS[path.stem]}
    assert not upward, f'{path.name} (floor {FLOORS[path.stem]}) imports {upward}'


@pytest.mark.parametrize('path', modules(), ids=lambda p: p.name)
def test_no_function_is_longer_than_a_screen(path):
    long = [f'{node.name} ({node.end_lineno - node.lineno + 1} lines)' for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f'{path.name}: {", ".join(long)}'


def loaded_by(statement):
    result = subprocess.run([sys.executable, '-c', f'import sys; {statement}; print(" ".join(sys.modules))'],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_inference_loads_no_training_tables_or_plots():
    """The app and scripts that only predict start fast: `import predict` adds no training code, no pandas,
    no matplotlib and no progress bars beyond what `import torch` itself loads."""
    extra = loaded_by('import predict') - loaded_by('import torch')
    top = {name.split('.')[0] for name in extra}
    assert not top & {'train', 'data', 'metrics', 'pandas', 'matplotlib', 'tqdm', 'seaborn', 'sklearn'}, sorted(top)


def test_training_does_not_load_the_benchmark_or_figures():
    top = {name.split('.')[0] for name in loaded_by('import train')}
    assert not top & {'predict', 'evaluate', 'plots', 'matplotlib'}, sorted(top)
