"""A node home: the folder holding a node's config.toml and its data."""

from __future__ import annotations

from pathlib import Path

from .config import NodeConfig, default_config_text, load_config
from .markets import ConfigError

HOME_ENV = "MNODE_HOME"
CONFIG_FILE = "config.toml"


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

    def store_path(self, config: NodeConfig) -> Path:
        return self.path / config.store.path

    @classmethod
    def create(cls, path: Path) -> Home:
        """Make a new home with the documented default configuration; never overwrite one."""
        home = cls(path)
        if home.config_path.exists():
            raise ConfigError(f"{path}: already a node home ({CONFIG_FILE} exists)")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path}: exists and is not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
            home.config_path.write_text(default_config_text(), "utf-8")
            home.store_path(home.config()).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"{path}: cannot create a node home: {error.strerror}") from None
        return home
