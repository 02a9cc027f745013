"""Every ORM model, imported in one place so ``Base.metadata`` knows all tables (Alembic, drift test)."""

from experiments.store.models import Event, ImpressionItem
from shoprank.apikeys import ApiKey
from shoprank.catalog.models import Product, ProductEmbedding
from shoprank.db import Base

metadata = Base.metadata

__all__ = ["ApiKey", "Base", "Event", "ImpressionItem", "Product", "ProductEmbedding", "metadata"]
