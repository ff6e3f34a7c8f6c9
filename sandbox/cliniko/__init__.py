"""Sandbox Cliniko: a faithful emulator of the Cliniko API (read side) and its demo data generator."""
