"""Built-in strategy kinds; importing this package registers them (see ``arbray.scoring.registry``)."""

from . import factory, v51_baseline, v52_8signals, v53

__all__ = ["factory", "v51_baseline", "v52_8signals", "v53"]
