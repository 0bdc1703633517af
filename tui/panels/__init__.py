"""The dashboard's six panels, each a widget that renders the sources it listens to."""

from .book import BookPanel
from .integrity import IntegrityPanel
from .markets import MarketsPanel
from .overview import OverviewPanel
from .resources import ResourcesPanel
from .scaling import ScalingPanel

PANELS = (
    ("1", "overview", "Overview", OverviewPanel),
    ("2", "markets", "Markets", MarketsPanel),
    ("3", "book", "Book", BookPanel),
    ("4", "integrity", "Integrity", IntegrityPanel),
    ("5", "scaling", "Scaling", ScalingPanel),
    ("6", "resources", "Resources", ResourcesPanel),
)
"""Key, id, title and widget of each panel, in key order."""
