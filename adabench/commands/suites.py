"""`adabench suites {list,show,validate}`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adabench.commands import user_errors
from adabench.commands.options import Json, check_out_folder


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Benchmark suites (YAML data in suites/).", no_args_is_help=True)
    app.add_typer(sub, name="suites")

    @sub.command("list")
    @user_errors
    def list_cmd(json_: Json = False) -> None:
        """List the suites. Example: adabench suites list --json"""
        from adabench import console
        from adabench.data.suites import get_spec, list_suites

        rows = []
        for name in list_suites():
            spec = get_spec(name)
            rows.append(
                {
                    "name": name,
                    "source": spec.source.get("type"),
                    "metric": spec.metric,
                    "splits": ",".join(spec.splits),
                    "description": spec.description,
                }
            )
        console.print_json(rows) if json_ else console.print_table(rows, "suites")

    @sub.command("show")
    @user_errors
    def show_cmd(
        name: Annotated[str, typer.Argument(help="Suite name, e.g. shapes.")],
        split: Annotated[str, typer.Option(help="Split to sample from.")] = "test",
        samples: Annotated[
            int, typer.Option(min=0, help="Write a PNG grid of K samples (with --out).")
        ] = 0,
        out: Annotated[Path | None, typer.Option(help="Folder for the sample grid PNG.")] = None,
        model: Annotated[
            str | None,
            typer.Option(
                help="Also show the prompt this model runs for the first sample (its wrapper, "
                "prompt_source, tokens): a shipped config, embedded alias or folder; no weights "
                "are built."
            ),
        ] = None,
        json_: Json = False,
    ) -> None:
        """Show a suite: source, splits, metric and a rendered prompt; with --model, the prompt
        that model runs (the suite's for LLaVA-1.5, its chat template's otherwise).

        Examples: adabench suites show shapes --samples 16 --out /tmp/x ·
        adabench suites show shapes --model llava-onevision-qwen2-0.5b --json
        """
        from adabench import console
        from adabench.data.suites import get_spec, load_suite
        from adabench.sweep.prompts import model_prompt, suite_prompt_note

        check_out_folder(out)
        spec = get_spec(name)
        first = load_suite(name, split=split, limit=max(1, samples))
        info = {
            "name": spec.name,
            "description": spec.description,
            "source": spec.source,
            "splits": spec.splits,
            "metric": spec.metric,
            "family_metrics": spec.family_metrics,
            "max_new_tokens": spec.max_new_tokens,
            "prompt_example": spec.render_prompt(first[0]),
            "answers_example": first[0].answers,
            "path": str(spec.path),
        }
        if model is None:
            info["prompt_models"] = suite_prompt_note(spec.name)
        else:
            info.update(model_prompt(model, spec, first[0]))
        if samples and out is not None:
            from adabench.data.preview import sample_grid

            info["grid_png"] = str(
                sample_grid(first[:samples], Path(out) / f"{name}-{split}-samples.png")
            )
        if json_:
            console.print_json(info)
        else:
            console.print_table([{"key": k, "value": v} for k, v in info.items()], f"suite {name}")

    @sub.command("validate")
    @user_errors
    def validate_cmd(
        name: Annotated[
            str | None,
            typer.Argument(
                help="Check this suite's own data deeply (every image, answer, prompt)."
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(help="With NAME: also check every prompt fits this model's context."),
        ] = None,
        limit: Annotated[
            int | None, typer.Option(min=1, help="With NAME: check the first N samples per split.")
        ] = None,
        json_: Json = False,
    ) -> None:
        """Check every suite YAML parses and names existing metrics, or with NAME that suite's
        data: every sample has an answer, every image decodes, every prompt fits --model's
        context. Exit 2 if a check fails.

        Examples: adabench suites validate · adabench suites validate my-photos --model tiny
        """
        from adabench import console
        from adabench.data.suites import validate_all
        from adabench.errors import UserError

        if name is None:
            if model is not None or limit is not None:
                raise UserError("--model and --limit check one suite's data: give its NAME")
            rows = validate_all()
            console.print_json(rows) if json_ else console.print_table(rows, "suite validation")
            bad = [r["suite"] for r in rows if not r["ok"]]
            if bad:
                raise UserError(f"invalid suite(s): {', '.join(bad)}")
            return
        from adabench.sweep.suite_data import suite_checks

        rows = suite_checks(name, model, limit)
        console.print_json(rows) if json_ else console.print_table(rows, f"suite {name}: data")
        failed = [f"{r['split']}/{r['check']}" for r in rows if not r["ok"]]
        if failed:
            raise UserError(f"suite {name!r} failed: {', '.join(failed)}")
