"""Built-in strategy kinds; importing this package registers them (see ``arbray.scoring.registry``)."""

from . import ats_v2, factory, v51_baseline, v52_8signals, v53

__all__ = ["ats_v2", "factory", "v51_baseline", "v52_8signals", "v53"]
