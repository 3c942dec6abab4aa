"""Sharing trajectories between labs: dataset cards, citation files, packages (``share`` extra)."""
