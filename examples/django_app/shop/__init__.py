"""A minimal Django service: one view that works, one that raises."""
