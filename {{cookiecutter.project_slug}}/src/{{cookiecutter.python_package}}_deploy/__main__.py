"""The deployment's commands: `python -m <package>_deploy <command> --help`.

The project's nox sessions run them (`nox -s generate build push upload deploy infra`),
in the project's own environment. Each works on one Kedro environment (`--env`), with
that environment's settings (see config.py). A problem the user can fix ends in one
line, `ERROR: <what>: <how to fix it>`, and exit status 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import config, ship
from .dags import write_dags
from .hooks import project_dir
from .infra import Infra, InfraError
from .local import Local, LocalError
from .plan import PlanError

CLOUD_ENV = "gcp"  # the environment the baked project's DAGs run with
TARGETS = ("local", "composer")
INFRA_ACTIONS = ("plan", "apply", "settings", "validate")


def target(project: Path, env: str) -> ship.Target:
    loader = config.project_loader(project, env)
    return ship.Target(project, env, config.deploy_settings(loader))


def generate(
    where: ship.Target,
    pipelines: str,
    image: str | None,
    params: list[str] = (),
    check: bool = False,
) -> list[Path]:
    """Write the DAGs of ``pipelines`` for the environment into dags/<env>/, pinned
    to ``image`` (by default the one `push` recorded; none for the local
    environment, whose tasks run here), ``params`` (`key=value`) over its settings;
    with ``check``, load them in Airflow (its own environment, from airflow/uv.lock)."""
    if image is None and where.env != "local":
        image = ship.pushed_image(where)
    params = [*params, f"image={image}"] if image else list(params)
    try:
        written = write_dags(where.dags, where.env, pipelines, params)
    except subprocess.CalledProcessError as error:
        raise ship.ShipError(
            "`kedro airflow create` failed: see its message above"
        ) from error
    for path in written:
        print(f"Wrote {path.relative_to(where.project)}")
    if check:
        local = Local(where.project, where.env)
        local.prepare_airflow()
        dags = [path for path in written if path.name.endswith("_dag.py")]
        print(f"Airflow loads {', '.join(local.check_imports(dags))} without errors")
    return written


def deploy(project: Path, args: argparse.Namespace, rest: list[str]) -> int:
    """To the target asked for, or else the one the environment's deploy.yml names."""
    env = args.env or (CLOUD_ENV if args.target == "composer" else None)
    chosen = args.target or target(project, env or "local").settings["target"]
    if chosen == "local":
        local = argparse.ArgumentParser(prog="nox -s deploy -- --target local")
        local.add_argument("--pipelines", default="__default__", help="comma-separated")
        local.add_argument(
            "--keep-running",
            action="store_true",
            help="leave MLflow and the Airflow UI running afterwards",
        )
        local.add_argument(
            "--conf",
            action="append",
            default=[],
            metavar="JSON",
            help='a run\'s parameters, {"model_options.test_size": 0.3}; given more '
            "than once, that many runs of each DAG at the same time",
        )
        options = local.parse_args(rest)
        return Local(project, env or "local").deploy(
            options.pipelines, options.keep_running, options.conf
        )
    composer = argparse.ArgumentParser(prog="nox -s deploy -- --target composer")
    composer.add_argument("--pipelines", default="__default__", help="comma-separated")
    options = composer.parse_args(rest)
    where = target(project, env or CLOUD_ENV)
    print(f"== Deploying environment {where.env} to Cloud Composer", flush=True)
    ship.build(where, [])
    ship.push(where)
    generate(where, options.pipelines, None)
    ship.upload(where, dry_run=False)
    ship.summary(where)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    with_env = argparse.ArgumentParser(add_help=False)
    with_env.add_argument("--env", help=f"Kedro environment (default: {CLOUD_ENV})")
    commands.add_parser(
        "build",
        parents=[with_env],
        help="build the image; other options go to docker build",
    )
    commands.add_parser(
        "push",
        parents=[with_env],
        help="push the image, record its digest in build/<env>/image",
    )
    upload = commands.add_parser(
        "upload", parents=[with_env], help="upload dags/<env>/ to the DAG folder"
    )
    upload.add_argument("--dry-run", action="store_true", help="say what would change")
    generate_ = commands.add_parser(
        "generate", parents=[with_env], help="write the DAGs into dags/<env>/"
    )
    generate_.add_argument(
        "--pipelines", default="__default__", help="comma-separated (__default__)"
    )
    generate_.add_argument(
        "--image", help="the image to run (default: build/<env>/image)"
    )
    generate_.add_argument(
        "--check",
        action="store_true",
        help="then load the DAGs in Airflow, failing on any import error",
    )
    generate_.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of airflow.yml for this once (repeatable)",
    )
    commands.add_parser(
        "summary", parents=[with_env], help="say what is deployed where"
    )
    infra_ = commands.add_parser(
        "infra",
        parents=[with_env],
        help="Terraform in infra/, its outputs into conf/<env>/globals.yml",
    )
    infra_.add_argument("action", choices=INFRA_ACTIONS)
    deploy_ = commands.add_parser(
        "deploy", help="deploy to the target deploy.yml names, or --target's"
    )
    deploy_.add_argument(
        "--target", choices=TARGETS, help="default: deploy.yml's `target`"
    )
    deploy_.add_argument(
        "--env", help="Kedro environment (default: local, or gcp for composer)"
    )
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in {"build", "deploy"}:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    project = project_dir()
    try:
        if args.command == "deploy":
            return deploy(project, args, rest)
        where = target(project, args.env or CLOUD_ENV)
        if args.command == "build":
            ship.build(where, rest)
        elif args.command == "push":
            ship.push(where)
        elif args.command == "upload":
            ship.upload(where, args.dry_run)
        elif args.command == "generate":
            generate(where, args.pipelines, args.image, args.params, args.check)
        elif args.command == "infra":
            getattr(Infra(project, args.env or CLOUD_ENV), args.action)()
        else:
            ship.summary(where)
    except (ship.ShipError, PlanError, LocalError, InfraError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
