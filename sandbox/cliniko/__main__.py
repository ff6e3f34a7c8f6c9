"""`python -m sandbox.cliniko --port P`: run the sandbox Cliniko API."""

from .cli import cliniko_command

if __name__ == "__main__":
    cliniko_command(prog_name="python -m sandbox.cliniko")
