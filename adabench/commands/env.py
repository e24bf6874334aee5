"""`adabench env`: print the environment fingerprint that every run records in meta.json."""

from __future__ import annotations

from typing import Annotated

import typer

from adabench.commands import user_errors


def register(app: typer.Typer) -> None:
    @app.command("env")
    @user_errors
    def env_cmd(
        json_output: Annotated[
            bool, typer.Option("--json", help="Print the fingerprint as JSON on stdout.")
        ] = False,
    ) -> None:
        """Show the host, CPU, RAM, GPU, driver, library versions and timing-relevant settings.

        Examples:
          adabench env
          adabench env --json > env.json
        """
        from adabench.console import print_json, print_table
        from adabench.measure.env import fingerprint, flatten

        info = fingerprint()
        if json_output:
            print_json(info)
            return
        rows = [{"field": k, "value": "-" if v is None else v} for k, v in flatten(info).items()]
        print_table(rows, title="adabench environment")
