"""The `sandbox xero` command: run the emulator threaded on a port until stopped."""

import logging

import click

from sandbox.serve import run_until_stopped
from sandbox.xero.app import create_app

logger = logging.getLogger(__name__)


@click.command("xero")
@click.option("--port", type=int, default=5055, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--window-seconds", type=float, default=60.0, show_default=True, help="Rate-limit window length.")
@click.option("--client-id", default="sandbox-client", show_default=True)
@click.option("--client-secret", default="sandbox-secret", show_default=True)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Registered redirect URI (repeatable); none = any http://localhost or 127.0.0.1 URI.",
)
@click.option("--auto-consent", is_flag=True, help="Skip the login/consent page.")
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON file to load state from and save it to.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for fault injection.")
def xero_command(port, host, window_seconds, client_id, client_secret, redirect_uris, auto_consent, data_file, seed):
    """Run the sandbox Xero emulator (identity + Accounting API) until stopped."""
    app = create_app(
        window_seconds=window_seconds,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        auto_consent=auto_consent,
        data_file=data_file,
        seed=seed,
    )
    run_until_stopped(app, host, port, lambda base: [f"Sandbox Xero running at {base}"],
                      on_stop=app.extensions["xero_sandbox"].store.stop_autosave)
