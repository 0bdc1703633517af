"""A node home: the folder holding a node's config.toml and its data."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.markets import ConfigError
from .config import NodeConfig, default_config_text, load_config
from .keys import OPERATOR, SERVER, create_key_pair
from .permissions import PRIVATE_FOLDER_MODE, write_private

HOME_ENV = "MNODE_HOME"
CONFIG_FILE = "config.toml"
RUNTIME_FILE = "node.json"
ANALYTICS_SOCKET = "analytics.sock"
"""Written in the home while a node runs: its pid, bound endpoints and server key."""


class Home:
    """Paths of one node home and its configuration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config_path = path / CONFIG_FILE

    def config(self) -> NodeConfig:
        if not self.config_path.exists():
            raise ConfigError(
                f"{self.path}: not a node home ({CONFIG_FILE} missing); create one with "
                f"`mnode init {self.path}`"
            )
        return load_config(self.config_path)

    @property
    def runtime_path(self) -> Path:
        return self.path / RUNTIME_FILE

    @property
    def analytics_endpoint(self) -> str:
        """The ipc socket of the analytics process beside a running node."""
        return f"ipc://{self.path.resolve() / ANALYTICS_SOCKET}"

    def store_path(self, config: NodeConfig) -> Path:
        return self.path / config.store.path

    def keys_path(self, config: NodeConfig) -> Path:
        return self.path / config.security.keys

    def peers_path(self, config: NodeConfig) -> Path:
        return self.path / config.security.peers_file

    @classmethod
    def create(cls, path: Path) -> Home:
        """Make a new home: the documented default configuration, the data folder, and the
        server's and the operator's CURVE key pairs, all the owner's only (folders 0700, files
        0600). Never overwrites a home."""
        home = cls(path)
        if home.config_path.exists():
            raise ConfigError(f"{path}: already a node home ({CONFIG_FILE} exists)")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path}: exists and is not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
            os.chmod(path, PRIVATE_FOLDER_MODE)
            write_private(home.config_path, default_config_text())
            config = home.config()
            home.store_path(config).mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
            keys = home.keys_path(config)
            create_key_pair(keys, SERVER)
            create_key_pair(keys, OPERATOR)
        except OSError as error:
            raise ConfigError(f"{path}: cannot create a node home: {error.strerror}") from None
        return home
