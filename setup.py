"""Finds the packages of the four code folders, which pyproject.toml's `package-dir` installs as
marketnode.node, marketnode.cli, marketnode.tui and marketnode.plugins (setuptools' `find`
alone would name them `node`, `cli`, ... at the top of site-packages)."""

from setuptools import find_packages, setup

FOLDERS = ("node", "cli", "tui", "plugins")

PATTERNS = [pattern for folder in FOLDERS for pattern in (folder, f"{folder}.*")]

setup(packages=[f"marketnode.{package}" for package in find_packages(include=PATTERNS)])
