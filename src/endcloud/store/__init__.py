"""The store: a SQLite file (embedded default) or a PostgreSQL server, behind one set of
repository modules, one per concern (every SQL statement of the project lives in this package):

    db             connections, migrations, the run log      Store.open("endcloud.db" | "postgresql://...")
    conversations  customers and tokens, conversations, exchanges, the review listing
    feedback       customer feedback, staff reviews, the answer memory, human ratings
    handoffs       hand-offs to a person: queue, claims, messages, staff replies
    labels         cloud labels, quarantine, failures, the egress audit
    evolve         evolve rounds and the exchanges they used
    training       the end model's training log and adapters
    scores         the evaluation stage's scores
    champion       the champion pointer (a version), adapter archives, each replica's loads
    report         per-round and per-day figures
    writer         the service's group-committing writer and its readers
    postgres       the PostgreSQL connection: pool, parameter rewriting, error mapping, redaction
    migrations     SQLite's named migrations; pg_migrations: PostgreSQL's, one for one
"""

from endcloud.store.db import Store, default_location
from endcloud.store.migrations import MIGRATIONS

__all__ = ["Store", "default_location", "MIGRATIONS"]
