"""What every `levelflow` command shares: located errors instead of tracebacks, and warnings
(with `--strict`, errors). Imported by cli.py and cli_local.py alike."""
from __future__ import annotations

import functools
import sys

import click

from .errors import LevelflowError, Problem


def reports_problems(command):
    """Bad input becomes located messages on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LevelflowError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        except OSError as exc:  # a file named by the error, or (a port, a socket) the error alone
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)

    return wrapper


strict_option = click.option("--strict", is_flag=True,
                             help="Treat warnings as errors: exit 1 (and write nothing) when there is any.")


def quiet() -> bool:
    """Whether `levelflow --quiet` was given."""
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("quiet"))


def say(message: str) -> None:
    """An informational line on stdout ("ok: ...", "wrote ..."), unless --quiet."""
    if not quiet():
        click.echo(message)


def settings():
    """The project's settings (levelflow.config), read once per command."""
    context = click.get_current_context(silent=True)
    root = context.find_root() if context else None
    if root is not None and isinstance(root.obj, dict) and "settings" in root.obj:
        return root.obj["settings"]
    from .config import load_settings

    loaded = load_settings()
    if root is not None:
        root.obj = {**(root.obj or {}), "settings": loaded}
    return loaded


def definition_paths(paths) -> tuple:
    """PATHS as given, else the settings' definitions directory."""
    if paths:
        return tuple(paths)
    folder = settings().path("definitions")
    if folder is None:
        raise click.UsageError("give the definitions (files or directories), or set definitions in levelflow.toml "
                               "or [tool.levelflow] (see `levelflow config`)")
    return (folder,)


def resolve_params(params_path, env, required: bool):
    """--params, else the parameters of --env (or of the settings' env); a usage error when both
    are given, or none is known and `required`."""
    if params_path is not None and env is not None:
        raise click.UsageError("give --params FILE or --env NAME, not both")
    if params_path is not None:
        return params_path
    found = settings().params_file(env)
    if found is None and required:
        raise click.UsageError("give --params FILE or --env NAME (or set env in levelflow.toml or [tool.levelflow])")
    if found is not None and not found.is_file():
        raise LevelflowError([Problem(str(found), f"no such parameters file (environment {env or settings().get('env')!r}; "
                                                  "see `levelflow config`)")])
    return found


def engine_and_modes(engine, step_mode) -> tuple:
    """--engine and --step-mode, else the settings' (a step mode per engine is a table)."""
    if engine is None and settings().get("engine") is not None:
        from .backends import engine_names

        engine = settings().get("engine")
        if engine not in engine_names():
            raise LevelflowError([Problem(settings().sources["engine"], f"engine: must be one of {', '.join(engine_names())}, "
                                                                         f"got {engine!r}")])
    if step_mode is not None:
        return engine, step_mode, {}
    configured = settings().get("step_mode")
    return (engine, None, dict(configured)) if isinstance(configured, dict) else (engine, configured, {})


env_option = click.option("--env", metavar="NAME",
                          help="Use environment NAME's parameters: platform-parameters-NAME.json beside the definitions, "
                               "or the file levelflow.toml's [params] names (instead of --params).")


def print_warnings(caught, strict: bool) -> None:
    """Show warnings recorded by `warnings.catch_warnings(record=True)`; --strict: exit 1."""
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    if strict and caught:
        click.echo(f"error: {len(caught)} warning(s), and --strict treats warnings as errors", err=True)
        sys.exit(1)


class RegistryChoice(click.Choice):
    """A choice among names read from the engine registry (levelflow.backends) when the command
    runs, so that an engine registered after this module was imported is offered too."""

    def __init__(self, names):
        self._names = names
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self):
        return tuple(self._names())

    @choices.setter
    def choices(self, _value):
        pass


def engine_option(help_text: str = "Override the definitions' engine."):
    from .backends import engine_names

    return click.option("--engine", type=RegistryChoice(engine_names), help=help_text)


def step_mode_option(command):
    from .backends import all_step_modes, engines

    modes = "; ".join(f"{engine.name}: {', '.join(engine.step_modes)}" for engine in engines().values())
    return click.option("--step-mode", type=RegistryChoice(all_step_modes),
                        help=f"How steps call their jobs, among the engine's modes (default: its first). {modes}. "
                             "Composer operators: the Google provider's operators; Cloud Workflows native: Google's APIs "
                             "called by the workflow itself (docs/step-modes.md); functions: the AEF executor functions.")(command)


ENVVAR_PREFIX = "LEVELFLOW"


def give_options_envvars(command: click.Command, prefix: str = ENVVAR_PREFIX) -> None:
    """Let every option of every command be set as LEVELFLOW_<COMMAND>_<OPTION>, named from the
    command's path and the option's long flag (`levelflow generate --out` is
    LEVELFLOW_GENERATE_OUT, `levelflow executors serve --port` LEVELFLOW_EXECUTORS_SERVE_PORT).
    A flag given on the command line wins. (click's auto_envvar_prefix would name them from
    the parameters' Python names, e.g. OUT_DIR, which no user sees.)"""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None and param.expose_value:
            flag = max((opt for opt in param.opts if opt.startswith("--")), key=len, default=None)
            if flag is not None:
                param.envvar = f"{prefix}_{flag[2:].upper().replace('-', '_')}"
                param.process_value = _naming_the_variable(param)  # type: ignore[method-assign]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            give_options_envvars(sub, f"{prefix}_{name.upper().replace('-', '_')}")


def _naming_the_variable(param: click.Option):
    """The option's own value check, whose message names the variable when the value came from one."""
    check = param.process_value

    def process_value(ctx: click.Context, value):
        try:
            return check(ctx, value)
        except click.BadParameter as exc:
            if ctx.get_parameter_source(param.name or "") is not click.core.ParameterSource.ENVIRONMENT:
                raise
            message = f"{exc.message.rstrip('.')} (from the environment variable {param.envvar})"
            raise click.BadParameter(message, ctx=exc.ctx, param=exc.param) from None

    return process_value
