import importlib
import pkgutil

import pytest

import varbayes


def _all_modules() -> list[str]:
    """Every module of the package, subpackages included (``__main__`` runs the CLI: left out)."""
    names = ["varbayes"]
    for info in pkgutil.walk_packages(varbayes.__path__, prefix="varbayes."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return sorted(names)


def test_every_public_name_imports():
    for name in varbayes.__all__:
        assert getattr(varbayes, name) is not None, name


def test_every_module_declares_all_and_it_resolves():
    for info in pkgutil.iter_modules(varbayes.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"varbayes.{info.name}")
        assert hasattr(module, "__all__"), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"varbayes.{info.name}.{name}"


def test_the_walk_finds_the_subpackages():
    modules = _all_modules()
    assert {"varbayes.nn.layers", "varbayes.cli.parser", "varbayes._fast.stack"} <= set(modules)


def _resolves(module, name):
    """What ``from module import name`` finds: an attribute, else a submodule."""
    if hasattr(module, name):  # a package's lazy __getattr__ counts
        return True
    try:
        importlib.import_module(f"{module.__name__}.{name}")
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("module_name", _all_modules())
def test_every_module_all_names_exist(module_name):
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} declares no __all__"
    exported = module.__all__
    assert isinstance(exported, list | tuple), f"{module_name}.__all__ is {type(exported)}"
    assert all(isinstance(n, str) for n in exported), f"{module_name}.__all__ holds a non-str"
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ has duplicates"
    missing = [name for name in exported if not _resolves(module, name)]
    assert not missing, f"{module_name}.__all__ names what it lacks: {missing}"


def test_version_is_a_string():
    assert isinstance(varbayes.__version__, str) and varbayes.__version__.count(".") == 2
