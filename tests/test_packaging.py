"""The installed package: a stub beside every compiled module, py.typed, .pxd.

These tests look at the package that ``import rice_fast`` finds (the wheel
that scripts/test installs), so they catch files that the build fails to
install. Tests of the behaviour would not notice a missing stub or .pxd.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import inspect
from pathlib import Path

import pytest

import rice_fast

PACKAGE_DIRS = [Path(entry) for entry in rice_fast.__path__]
SOURCE_PACKAGE = Path(__file__).resolve().parents[1] / "rice_fast"


def extension_modules() -> dict[str, Path]:
    """Map the dotted name of each installed compiled module to its file."""
    modules: dict[str, Path] = {}
    for package_dir in PACKAGE_DIRS:
        for path in sorted(package_dir.rglob("*")):
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if path.name.endswith(suffix):
                    relative = path.relative_to(package_dir)
                    stem = path.name[: -len(suffix)]
                    modules[".".join(("rice_fast", *relative.parent.parts, stem))] = (
                        path
                    )
                    break  # ".so" also matches the longer suffixes
    return modules


EXTENSIONS = extension_modules()


def stub_path(extension: Path) -> Path:
    return extension.parent / (extension.name.split(".")[0] + ".pyi")


def stub_names(tree: ast.Module | ast.ClassDef) -> set[str]:
    """Return the names that a stub module or class body defines."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_compiled_modules_installed() -> None:
    assert "rice_fast.stun._codec" in EXTENSIONS


def test_compiled_module_for_every_pyx() -> None:
    for pyx in SOURCE_PACKAGE.rglob("*.pyx"):
        relative = pyx.relative_to(SOURCE_PACKAGE).with_suffix("")
        name = ".".join(("rice_fast", *relative.parts))
        assert name in EXTENSIONS, f"{pyx} has no installed compiled module"


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
def test_stub_installed_beside_module(name: str) -> None:
    extension = EXTENSIONS[name]
    assert stub_path(extension).is_file(), f"no .pyi stub beside {extension}"


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
def test_stub_declares_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__ or "") == EXTENSIONS[name]
    stub = ast.parse(stub_path(EXTENSIONS[name]).read_text())
    declared = stub_names(stub)
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}

    for attr_name, value in vars(module).items():
        if attr_name.startswith("_") or inspect.ismodule(value):
            continue
        if getattr(value, "__module__", name) != name:
            continue  # imported from elsewhere, such as the error classes
        assert attr_name in declared, f"{name}.{attr_name} is missing from the stub"

        if inspect.isclass(value):
            members = {m for m in vars(value) if not m.startswith("_")}
            missing = members - stub_names(classes[attr_name])
            assert not missing, f"{name}.{attr_name} stub lacks {sorted(missing)}"


def test_py_typed_installed() -> None:
    assert any((package_dir / "py.typed").is_file() for package_dir in PACKAGE_DIRS)


def test_pxd_files_installed() -> None:
    sources = sorted(SOURCE_PACKAGE.rglob("*.pxd"))
    assert sources, "no .pxd files found in the source tree"
    for pxd in sources:
        relative = pxd.relative_to(SOURCE_PACKAGE)
        installed = [d / relative for d in PACKAGE_DIRS if (d / relative).is_file()]
        assert installed, f"{relative} is not installed"


def test_pxd_beside_compiled_module() -> None:
    # cimport finds rice_fast/stun/_codec.pxd on the include path; it must sit
    # in the same folder as the module it declares.
    for name, extension in EXTENSIONS.items():
        source_pxd = SOURCE_PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".pxd")
        if source_pxd.is_file():
            assert (extension.parent / source_pxd.name).is_file(), name
