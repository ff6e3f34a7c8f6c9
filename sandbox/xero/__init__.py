"""Sandbox Xero: a standalone Flask emulator of Xero's identity and Accounting APIs."""
