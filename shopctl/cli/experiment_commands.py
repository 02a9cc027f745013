"""``shoprank user create|unlock`` (dashboard logins) and ``shoprank simulate`` (synthetic shoppers for experiments)."""

from __future__ import annotations

import click

from shopctl.cli import context
from shoprank.users import ROLES


@click.group("user")
def user_group() -> None:
    """Dashboard users (passwords stored as scrypt hashes)."""


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="merchandiser", show_default=True)
@click.option(
    "--password",
    envvar="SHOPRANK_USER_PASSWORD",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given; or set SHOPRANK_USER_PASSWORD (never on the command line in production).",
)
def user_create(email: str, role: str, password: str) -> None:
    """Create a dashboard user."""
    from shoprank.users import UserError, create_user

    with context.database(context.settings()) as db:
        try:
            with db.session() as session:
                user = create_user(session, email, password, role)
                click.echo(f"created {user.role} {user.email} (#{user.id})")
        except UserError as exc:
            raise click.ClickException(str(exc)) from None


@user_group.command("unlock")
@click.option("--email", required=True)
def user_unlock(email: str) -> None:
    """Lift a sign-in lockout now (e.g. the only admin locked themselves out)."""
    from sqlalchemy import select

    from shoprank.users import User, normalize_email, unlock_user

    with context.database(context.settings()) as db, db.session() as session:
        user_id = session.scalar(select(User.id).where(User.email == normalize_email(email)))
        if user_id is None:
            raise click.ClickException(f"no user with email {email}")
        unlock_user(session, user_id)
        click.echo(f"unlocked {normalize_email(email)}")


@click.command("simulate")
@click.option("--experiment", "experiment_key", required=True, help="Experiment the shoppers should land in.")
@click.option("--users", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--ctr-lift", type=float, default=0.0, show_default=True, help="Relative click lift of the treatment.")
@click.option("--cvr-lift", type=float, default=0.0, show_default=True, help="Relative purchase lift.")
@click.option(
    "--days", type=click.IntRange(0, 90), default=0, show_default=True, help="Spread sessions over past days."
)
@click.option("--url", default=None, help="A running shoprank (http://host:port); default: this app in process.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Shoppers at once.")
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(
    experiment_key: str,
    users: int,
    ctr_lift: float,
    cvr_lift: float,
    days: int,
    url: str | None,
    concurrency: int,
    seed: int,
) -> None:
    """Drive synthetic shoppers through the real search and event APIs."""
    from tqdm import tqdm

    from experiments.manage import get_experiment
    from shopctl.simulator import FlaskTransport, HttpTransport, SimulationConfig, Simulator

    if ctr_lift <= -1 or cvr_lift <= -1:
        raise click.BadParameter("lifts are relative and must be above -1 (-100 %)")
    settings = context.settings()
    control = "control"
    app = None
    if url is None:  # in process: the local database must exist, and tells us control and the status
        context.check_schema(settings.resolved_database_url)
        from webapp import create_app

        app = create_app(settings)
        app.extensions["shoprank"].index.refresh_if_changed()
    with context.database(settings, require_schema=False) as db:
        try:
            with db.session() as session:
                experiment = get_experiment(session, experiment_key)
                if experiment is None and url is None:
                    raise click.ClickException(f"no experiment {experiment_key!r} in {settings.resolved_database_url}")
                if experiment is not None:
                    control = experiment.variants[0].key
                    if experiment.status != "running":
                        click.echo(f"warning: {experiment_key} is {experiment.status}; shoppers get control", err=True)
        except click.ClickException:
            raise
        except Exception:  # a remote server's experiment need not exist in the local database
            pass
    transport = HttpTransport(url) if url else FlaskTransport(app)
    config = SimulationConfig(
        users=users,
        ctr_lift=ctr_lift,
        cvr_lift=cvr_lift,
        control=control,
        days=days,
        seed=seed,
        concurrency=concurrency if url else 1,
    )
    with tqdm(total=users, unit="shopper", desc=f"simulating {experiment_key}") as bar:
        result = Simulator(transport, config).run(progress=bar.update)
    click.echo(result.summary())
    if experiment_key not in result.experiments:
        click.echo(
            f"note: no shopper landed in {experiment_key} (not running, targeting, or coverage); "
            f"seen: {dict(result.experiments) or 'none'}",
            err=True,
        )
