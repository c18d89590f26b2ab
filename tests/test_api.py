import importlib
import pkgutil

import varbayes


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


def test_version_is_a_string():
    assert isinstance(varbayes.__version__, str) and varbayes.__version__.count(".") == 2
