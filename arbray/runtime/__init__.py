"""The live runtime's Ray-free core: what the SymbolState, Strategy, PositionManager, RiskGuard and
Journal actors wrap, and the control interface the API reaches them through."""
