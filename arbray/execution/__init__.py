"""Execution core: accounts, positions, the maker/taker state machine, venues and the paper fill model."""
