"""Risk rules: a declarative table producing ACTIVE / REDUCING / HALTED with reasons."""
