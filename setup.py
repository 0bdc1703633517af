"""Finds the packages of the four code folders, which pyproject.toml's `package-dir` installs as
marketnode.node, marketnode.cli, marketnode.tui and marketnode.plugins (setuptools' `find`
alone would name them `node`, `cli`, ... at the top of site-packages), and builds the compiled
matching core (node/core/compiled/_engine.pyx) where it can.

The compiled core is optional: without Cython or a C compiler, or if its build fails, the
install goes on without it, says so in one line, and the Python engine runs (the node and
`mnode bench engine` name the core they use and why).
"""

import sys
from collections.abc import Iterable
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

FOLDERS = ("node", "cli", "tui", "plugins")

PATTERNS = [pattern for folder in FOLDERS for pattern in (folder, f"{folder}.*")]

COMPILED_CORE = "marketnode.node.core.compiled._engine"
SOURCE_FOLDER = Path(__file__).resolve().parent / "node" / "core" / "compiled"
NOT_BUILT = "_engine.not-built"
"""The record, beside where the extension would be, that this install could not build it and
why (node/core/compiled/__init__.py reads it to say so; the tests skip the compiled core's
checks on it instead of failing). Written into the source folder, which an editable install
runs from, and into the build folder, which a wheel is made of; removed by a build that
succeeds."""


class OptionalBuildExt(build_ext):
    """build_ext that leaves out an extension it cannot build instead of failing the install."""

    failed = False
    """Set once the failure is told, so its consequences (nothing to copy) are not told again."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no compiler at all, or an editable install's copy step
            if not OptionalBuildExt.failed:
                skipped(error, self._folders())

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # a compiler that fails on the source shows here
            skipped(error, self._folders())
        else:
            for folder in self._folders():
                (folder / NOT_BUILT).unlink(missing_ok=True)

    def _folders(self) -> set[Path]:
        """The source folder and the one the built extension goes to (the same in place)."""
        return {SOURCE_FOLDER, Path(self.get_ext_fullpath(COMPILED_CORE)).resolve().parent}


def skipped(error: Exception, folders: Iterable[Path] = (SOURCE_FOLDER,)) -> None:
    """Say in one line that the compiled core is left out, and why; record it (NOT_BUILT)."""
    OptionalBuildExt.failed = True
    reason = " ".join(str(error).split()) or type(error).__name__
    print(
        f"marketnode: compiled core not built ({reason}); the Python engine will run",
        file=sys.stderr,
    )
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / NOT_BUILT).write_text(reason + "\n")


def _extensions() -> list[Extension]:
    """The compiled core, cythonized here; none if Cython is missing (said in one line)."""
    try:
        from Cython.Build import cythonize
    except ImportError as error:
        skipped(error)
        return []
    extension = Extension(COMPILED_CORE, ["node/core/compiled/_engine.pyx"])
    try:
        return cythonize([extension], compiler_directives={"language_level": 3}, quiet=True)
    except Exception as error:
        skipped(error)
        return []


setup(
    packages=[f"marketnode.{package}" for package in find_packages(include=PATTERNS)],
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
