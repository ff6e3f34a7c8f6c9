"""Run the sandbox Xero emulator: `python -m sandbox.xero --port P`."""

from sandbox.xero.cli import xero_command

if __name__ == "__main__":
    xero_command(prog_name="python -m sandbox.xero")
