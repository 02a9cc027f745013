"""``shoprank user create`` and ``shoprank simulate`` in-process (click runner) on the test databases."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from experiments.store.experiment_models import Exposure
from shopctl.cli import cli
from shoprank.users import User, authenticate
from tests.experiment_support import ab_spec, reset_experiments, running


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"SHOPRANK_DATABASE_URL": url, "SHOPRANK_RERANKER_ALLOW_DOWNLOAD": "0", "SHOPRANK_ENV": "test", **extra}


def test_user_create(shop_db_url, shop_services):
    reset_experiments(shop_services)
    runner = CliRunner()
    args = ["user", "create", "--email", "New.Merch@Example.com", "--role", "merchandiser"]
    created = runner.invoke(cli, args, env=_env(shop_db_url, SHOPRANK_USER_PASSWORD="a long enough password"))
    assert created.exit_code == 0, created.output
    assert "created merchandiser new.merch@example.com" in created.output
    again = runner.invoke(cli, args, env=_env(shop_db_url, SHOPRANK_USER_PASSWORD="a long enough password"))
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(
        cli, ["user", "create", "--email", "x@example.com"], env=_env(shop_db_url, SHOPRANK_USER_PASSWORD="short")
    )
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    prompted = runner.invoke(
        cli,
        ["user", "create", "--email", "ops@example.com", "--role", "ops"],
        env=_env(shop_db_url),
        input="prompted password 1\nprompted password 1\n",
    )
    assert prompted.exit_code == 0, prompted.output
    with shop_services.db.session() as session:
        user = session.scalar(select(User).where(User.email == "new.merch@example.com"))
        assert user.password_hash.startswith("scrypt:") and "a long enough password" not in user.password_hash
        assert authenticate(session, "NEW.merch@example.com", "a long enough password") is not None
        assert authenticate(session, "new.merch@example.com", "wrong password!!") is None
    reset_experiments(shop_services)


def test_simulate_drives_shoppers_into_the_experiment(shop_db_url, shop_services):
    reset_experiments(shop_services)
    running(shop_services, ab_spec("cli-sim"))
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--experiment",
            "cli-sim",
            "--users",
            "12",
            "--ctr-lift",
            "0.2",
            "--cvr-lift",
            "0.1",
            "--days",
            "2",
        ],
        env=_env(shop_db_url),
    )
    assert result.exit_code == 0, result.output
    assert "12 shoppers" in result.output and "shoppers per variant" in result.output
    with shop_services.db.session() as session:
        exposed = session.scalar(select(func.count()).select_from(Exposure).where(Exposure.experiment == "cli-sim"))
    assert exposed == 12
    missing = CliRunner().invoke(cli, ["simulate", "--experiment", "nope", "--users", "1"], env=_env(shop_db_url))
    assert missing.exit_code != 0 and "no experiment 'nope'" in missing.output
    reset_experiments(shop_services)
