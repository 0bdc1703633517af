"""The dashboard's eight panels, each a widget that renders the sources it listens to."""

from .book import BookPanel
from .integrity import IntegrityPanel
from .liquidity import LiquidityPanel
from .markets import MarketsPanel
from .overview import OverviewPanel
from .resources import ResourcesPanel
from .scaling import ScalingPanel
from .settlement import SettlementPanel

PANELS = (
    ("1", "overview", "Overview", OverviewPanel),
    ("2", "markets", "Markets", MarketsPanel),
    ("3", "book", "Book", BookPanel),
    ("4", "integrity", "Integrity", IntegrityPanel),
    ("5", "scaling", "Scaling", ScalingPanel),
    ("6", "resources", "Resources", ResourcesPanel),
    ("7", "settlement", "Settlement", SettlementPanel),
    ("8", "liquidity", "Liquidity", LiquidityPanel),
)
"""Key, id, title and widget of each panel, in key order."""
