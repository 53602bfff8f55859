"""Market-wide scanning: kline factor library, the ats_v2 model and the short-grid screen."""
