"""Every ORM model, imported in one place so ``Base.metadata`` knows all tables (Alembic, drift test)."""

from catalog.models import Category, ImportJob, Product, ProductEmbedding
from experiments.store.experiment_models import (
    Experiment,
    ExperimentAudit,
    ExperimentVariant,
    Exposure,
    RankingDefault,
)
from experiments.store.models import Event, ImpressionItem, UnitDayRollup
from experiments.store.suggestions import AnsweredSearch, SuggestionBlock
from shoprank.apikeys import ApiKey
from shoprank.db import Base
from shoprank.users import User

metadata = Base.metadata

__all__ = [
    "AnsweredSearch",
    "ApiKey",
    "Base",
    "Category",
    "Event",
    "Experiment",
    "ExperimentAudit",
    "ExperimentVariant",
    "Exposure",
    "ImportJob",
    "ImpressionItem",
    "Product",
    "ProductEmbedding",
    "RankingDefault",
    "SuggestionBlock",
    "UnitDayRollup",
    "User",
    "metadata",
]
