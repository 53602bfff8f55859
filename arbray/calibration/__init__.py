"""Calibration and statistics: outcome labels, score → win-probability calibrators, the calibration
monitor, the expected-value gate, the gate/threshold optimiser and the execution-cost analyser.

Everything here is Ray-free and reads the journal through ``arbray.storage.Store``; see
``docs/calibration.md``.
"""
