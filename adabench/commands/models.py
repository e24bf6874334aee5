"""`adabench models {list,show}` and `adabench methods {list,show}`."""

from __future__ import annotations

from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import Json, Plugins


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Model aliases and checkpoints.", no_args_is_help=True)
    app.add_typer(sub, name="models")

    @sub.command("list")
    @user_errors
    def list_cmd(json_: Json = False) -> None:
        """List model aliases (embedded tiny checkpoints, llava-1.5 hub ids, config-only shipped
        configs) with their decoder family. Example: adabench models list"""
        from adabench import console
        from adabench.models.catalog import describe, model_aliases

        rows = []
        for name in model_aliases():
            try:
                info = describe(name)
            except Exception as exc:  # an unbuilt embedded model is listed, not fatal
                info = {"name": name, "location": str(exc), "weights_present": False}
            ada = info.get("adallava") or {}
            rows.append(
                {
                    "name": name,
                    "family": info.get("family", ""),
                    "location": info["location"],
                    "weights_present": info["weights_present"],
                    "adallava": ada.get("variant", "") if ada else "",
                    "size_mb": info.get("size_mb", ""),
                }
            )
        console.print_json(rows) if json_ else console.print_table(rows, "models")

    @sub.command("show")
    @user_errors
    def show_cmd(
        name: Annotated[
            str, typer.Argument(help="Alias, shipped config, local folder or hub id (HF cache).")
        ],
        json_: Json = False,
    ) -> None:
        """Show a model's decoder family, the HF class adabench wraps, its config summary and
        whether its weights are present; a model adabench does not run exits 2 saying why.
        Example: adabench models show tiny"""
        from adabench import console
        from adabench.models.catalog import describe

        info = describe(name)
        console.print_json(info) if json_ else console.print_table(
            [{"key": k, "value": v} for k, v in info.items()], name
        )

    msub = typer.Typer(
        help="Methods: what each varies and the budgets it reaches.", no_args_is_help=True
    )
    app.add_typer(msub, name="methods")

    @msub.command("list")
    @user_errors
    def methods_list(plugin: Plugins = None, json_: Json = False) -> None:
        """List the methods grouped by what they vary (reference, blocks, heads, tokens, image,
        other), with their source papers and where each comes from (built-in, entry point,
        file, module). Combinations are written a+b (e.g. adallava-l+fastv).
        Example: adabench methods list --plugin examples/plugins/skip_odd.py"""
        from adabench import console
        from adabench.models.methods import KINDS, METHODS
        from adabench.models.plugins import load_plugins

        load_plugins(plugin)
        rows = [_method_row(name, METHODS.get(name)) for name in METHODS.names()]
        rows.sort(key=lambda r: (KINDS.index(r["group"]), r["name"]))
        if json_:
            console.print_json(rows)
            return
        for kind in KINDS:
            group = [
                {k: v for k, v in r.items() if k != "group"} for r in rows if r["group"] == kind
            ]
            if group:
                console.print_table(group, f"methods · {kind}")

    @msub.command("show")
    @user_errors
    def methods_show(
        name: Annotated[str, typer.Argument(help="Method name.")],
        plugin: Plugins = None,
        json_: Json = False,
    ) -> None:
        """Show one method. Example: adabench methods show layer-drop"""
        from adabench import console
        from adabench.models.methods import METHODS
        from adabench.models.plugins import load_plugins

        load_plugins(plugin)
        row = _method_row(name, METHODS.get(name))
        console.print_json(row) if json_ else console.print_table(
            [{"key": k, "value": v} for k, v in row.items()], name
        )


def _method_row(name: str, cls) -> dict:
    from adabench.models.methods import KINDS, origin_of

    kind = getattr(cls, "KIND", "other")
    return {
        "name": name,
        "group": kind if kind in KINDS else "other",
        "paper": getattr(cls, "PAPER", "") or "",
        "origin": origin_of(name),
        "varies": cls.VARIES,
        "description": cls.DESCRIPTION,
        "min_budget": getattr(
            cls,
            "MIN_BUDGET_TEXT",
            "1/N" if cls.min_budget.__qualname__.startswith("Method.") else "see description",
        ),
        "needs": f"AdaLLaVA-{cls.NEEDS_ADALLAVA} checkpoint" if cls.NEEDS_ADALLAVA else "",
        "wrappers": "all"
        if cls.WRAPPERS is None
        else f"{', '.join(cls.WRAPPERS)} only: {cls.WRAPPERS_WHY}",
        "args": ", ".join(f"{k}: {v}" for k, v in cls.ARGS.items()),
    }
