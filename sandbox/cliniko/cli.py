"""Click commands: `sandbox cliniko` runs the emulator, `sandbox seed` reloads data into a running one."""

import json

import click
import requests

from sandbox.serve import run_until_stopped

from .app import DEFAULT_API_KEY, create_app


@click.command("cliniko")
@click.option("--port", type=int, default=5002, show_default=True, help="Port to listen on (0 = any free port).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--api-key", default=DEFAULT_API_KEY, show_default=True, help="The API key clients authenticate with.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patients", type=int, default=300, show_default=True)
@click.option("--invoices", type=int, default=2000, show_default=True)
@click.option("--calls-per-minute", type=int, default=200, show_default=True)
@click.option("--data", "data_file", type=click.Path(dir_okay=False), help="JSON file to keep the state in.")
def cliniko_command(port, host, api_key, seed, patients, invoices, calls_per_minute, data_file):
    """Run the sandbox Cliniko API (threaded) until stopped; prints its base URL."""
    app = create_app(
        api_key=api_key,
        seed=seed,
        patients=patients,
        invoices=invoices,
        calls_per_minute=calls_per_minute,
        data_file=data_file,
    )
    run_until_stopped(app, host, port, lambda base: [
        f"Sandbox Cliniko: {base}/v1 (API key {api_key})", f"Control: {base}/_sandbox/state"])


@click.command("seed")
@click.option("--url", required=True, help="Base URL of the running sandbox, e.g. http://127.0.0.1:5002/v1.")
@click.option("--seed", type=int, default=None)
@click.option("--patients", type=int, default=None)
@click.option("--invoices", type=int, default=None)
@click.option("--api-key", default=None, help="Account to (re)generate (default: the sandbox's own key).")
def seed_command(url, seed, patients, invoices, api_key):
    """(Re)load generated data into a running Cliniko sandbox over HTTP; prints the new counts as JSON."""
    root = url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    body = {
        k: v
        for k, v in {"seed": seed, "patients": patients, "invoices": invoices, "api_key": api_key}.items()
        if v is not None
    }
    try:
        response = requests.post(f"{root}/_sandbox/seed", json=body, timeout=120)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the Cliniko sandbox at {root}: {exc}") from exc
    if response.status_code != 200:
        raise click.ClickException(f"sandbox refused the seed ({response.status_code}): {response.text[:500]}")
    click.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
