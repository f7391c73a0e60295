"""Helpers several suites share: real processes and network faults a test can switch on and off."""
