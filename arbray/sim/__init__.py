"""The market simulator: a seeded model of a USD-M market and recordings generated from it."""
