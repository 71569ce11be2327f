"""Named, forward-only schema migrations. Append new ones; never edit or reorder applied ones.

Each migration is (name, SQL script). `Store.open` applies the ones not yet recorded in the
`_migrations` table, each in its own transaction, in list order.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs",
        """
        CREATE TABLE runs (
            id          INTEGER PRIMARY KEY,
            stage       TEXT NOT NULL,
            run_dir     TEXT NOT NULL,
            config_json TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            stats_json  TEXT,
            error       TEXT
        );
        CREATE INDEX runs_stage ON runs (stage, started_at);
        """,
    ),
    (
        "0002_cloud",
        """
        CREATE TABLE cloud_labels (
            id                INTEGER PRIMARY KEY,
            sample_id         TEXT NOT NULL,
            prompt_hash       TEXT NOT NULL,
            run_id            INTEGER,
            model             TEXT NOT NULL,
            query             TEXT NOT NULL,
            context_json      TEXT NOT NULL,
            reply             TEXT NOT NULL,
            finish_reason     TEXT NOT NULL,
            prompt_tokens     INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost              REAL NOT NULL,
            latency_ms        REAL NOT NULL,
            attempts          INTEGER NOT NULL,
            created_at        TEXT NOT NULL,
            UNIQUE (sample_id, prompt_hash)
        );
        CREATE INDEX cloud_labels_prompt ON cloud_labels (prompt_hash);
        CREATE TABLE cloud_quarantine (
            id          INTEGER PRIMARY KEY,
            sample_id   TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            run_id      INTEGER,
            reason      TEXT NOT NULL,
            detail      TEXT NOT NULL,
            attempts    INTEGER NOT NULL,
            created_at  TEXT NOT NULL,
            UNIQUE (sample_id, prompt_hash)
        );
        CREATE TABLE cloud_failures (
            sample_id   TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            failures    INTEGER NOT NULL,
            last_error  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (sample_id, prompt_hash)
        );
        CREATE TABLE cloud_egress (
            id                INTEGER PRIMARY KEY,
            ts                TEXT NOT NULL,
            run_id            INTEGER,
            endpoint          TEXT NOT NULL,
            model             TEXT NOT NULL,
            payload_sha256    TEXT NOT NULL,
            request_bytes     INTEGER NOT NULL,
            response_bytes    INTEGER NOT NULL,
            prompt_tokens     INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_ms        REAL NOT NULL,
            cost              REAL NOT NULL,
            status            TEXT NOT NULL,
            attempt           INTEGER NOT NULL
        );
        CREATE INDEX cloud_egress_run ON cloud_egress (run_id, ts);
        """,
    ),
    (
        "0003_end",
        """
        CREATE TABLE end_train_log (
            id           INTEGER PRIMARY KEY,
            run_id       INTEGER NOT NULL REFERENCES runs (id),
            step         INTEGER NOT NULL,
            loss         REAL NOT NULL,
            lr           REAL NOT NULL,
            tokens       INTEGER NOT NULL,
            tokens_per_s REAL,
            logged_at    TEXT NOT NULL
        );
        CREATE INDEX end_train_log_run ON end_train_log (run_id, step);
        CREATE TABLE end_adapters (
            id          INTEGER PRIMARY KEY,
            run_id      INTEGER REFERENCES runs (id),
            path        TEXT NOT NULL,
            method      TEXT NOT NULL,
            step        INTEGER NOT NULL,
            base_id     TEXT NOT NULL,
            base_sha256 TEXT NOT NULL,
            data_sha256 TEXT NOT NULL,
            created_at  TEXT NOT NULL
        );
        """,
    ),
    (
        "0004_evaluate",
        """
        CREATE TABLE eval_scores (
            id              INTEGER PRIMARY KEY,
            run_id          INTEGER REFERENCES runs (id),
            system          TEXT NOT NULL,
            sample_id       TEXT NOT NULL,
            query           TEXT NOT NULL,
            reply           TEXT NOT NULL,
            reference       TEXT,
            sim             REAL,
            match           REAL NOT NULL,
            match_reference REAL,
            final           REAL NOT NULL,
            rule            TEXT NOT NULL CHECK (rule IN ('eq1', 'sim_only', 'match_only')),
            alpha           REAL NOT NULL,
            theta           REAL NOT NULL,
            scorers         TEXT NOT NULL,
            created_at      TEXT NOT NULL
        );
        CREATE INDEX eval_scores_run ON eval_scores (run_id, system);
        CREATE TABLE human_ratings (
            id              INTEGER PRIMARY KEY,
            sample_id       TEXT,
            query           TEXT NOT NULL,
            reply           TEXT NOT NULL,
            reference       TEXT,
            rating          INTEGER CHECK (rating BETWEEN 1 AND 5),
            verdict         TEXT CHECK (verdict IN ('good', 'bad')),
            corrected_reply TEXT,
            rater           TEXT NOT NULL DEFAULT '',
            source          TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            CHECK (rating IS NOT NULL OR verdict IS NOT NULL)
        );
        CREATE INDEX human_ratings_pair ON human_ratings (query, reply);
        """,
    ),
    (
    "0005_serve",
    """
    CREATE TABLE serve_customers (
        id           TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at   TEXT NOT NULL
    );
    CREATE TABLE serve_conversations (
        id          TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES serve_customers (id),
        created_at  TEXT NOT NULL
    );
    CREATE INDEX serve_conversations_customer ON serve_conversations (customer_id, created_at);
    CREATE TABLE serve_exchanges (
        id                      TEXT PRIMARY KEY,
        conversation_id         TEXT NOT NULL REFERENCES serve_conversations (id),
        model                   TEXT NOT NULL,
        context_json            TEXT NOT NULL,
        query                   TEXT NOT NULL,
        reply                   TEXT NOT NULL,
        end_reply               TEXT,
        answered_by             TEXT NOT NULL CHECK (answered_by IN ('end', 'cloud', 'handoff')),
        escalation              TEXT,
        cloud_status            TEXT,
        cloud_request_masked    TEXT,
        cloud_reply_masked      TEXT,
        match_score             REAL,
        confidence              REAL,
        prompt_tokens           INTEGER NOT NULL DEFAULT 0,
        completion_tokens       INTEGER NOT NULL DEFAULT 0,
        cloud_prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        cloud_completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost                    REAL NOT NULL DEFAULT 0,
        first_token_ms          REAL,
        latency_ms              REAL NOT NULL,
        finish_reason           TEXT NOT NULL,
        created_at              TEXT NOT NULL
    );
    CREATE INDEX serve_exchanges_conversation ON serve_exchanges (conversation_id, created_at);
    CREATE INDEX serve_exchanges_created ON serve_exchanges (created_at);
    CREATE TABLE serve_feedback (
        id          INTEGER PRIMARY KEY,
        exchange_id TEXT NOT NULL REFERENCES serve_exchanges (id),
        thumb       TEXT CHECK (thumb IN ('up', 'down')),
        rating      INTEGER CHECK (rating BETWEEN 1 AND 5),
        comment     TEXT,
        created_at  TEXT NOT NULL,
        CHECK (thumb IS NOT NULL OR rating IS NOT NULL OR comment IS NOT NULL)
    );
    CREATE INDEX serve_feedback_exchange ON serve_feedback (exchange_id);
    CREATE TABLE serve_reviews (
        id              INTEGER PRIMARY KEY,
        exchange_id     TEXT NOT NULL REFERENCES serve_exchanges (id),
        rating          INTEGER CHECK (rating BETWEEN 1 AND 5),
        verdict         TEXT CHECK (verdict IN ('approve', 'reject')),
        corrected_reply TEXT,
        reviewer        TEXT NOT NULL DEFAULT '',
        created_at      TEXT NOT NULL,
        CHECK (rating IS NOT NULL OR verdict IS NOT NULL OR corrected_reply IS NOT NULL)
    );
    CREATE INDEX serve_reviews_exchange ON serve_reviews (exchange_id);
    CREATE VIEW serve_corrections AS
        SELECT r.id AS review_id, e.id AS exchange_id, e.context_json, e.query,
               r.corrected_reply AS reply, r.created_at
        FROM serve_reviews r JOIN serve_exchanges e ON e.id = r.exchange_id
        WHERE r.corrected_reply IS NOT NULL AND trim(r.corrected_reply) != '';
    """,
),
    (
        "0006_evolve",
        """
        CREATE TABLE evolve_rounds (
            id              INTEGER PRIMARY KEY,
            run_id          INTEGER REFERENCES runs (id),
            round_dir       TEXT NOT NULL,
            status          TEXT NOT NULL CHECK (status IN
                                ('running', 'promoted', 'refused', 'skipped', 'failed')),
            started_at      TEXT NOT NULL,
            finished_at     TEXT,
            selected        INTEGER NOT NULL DEFAULT 0,
            corrections     INTEGER NOT NULL DEFAULT 0,
            labelled        INTEGER NOT NULL DEFAULT 0,
            quarantined     INTEGER NOT NULL DEFAULT 0,
            train_new       INTEGER NOT NULL DEFAULT 0,
            train_replay    INTEGER NOT NULL DEFAULT 0,
            cloud_calls     INTEGER NOT NULL DEFAULT 0,
            cloud_cost      REAL NOT NULL DEFAULT 0,
            champion_before TEXT,
            candidate       TEXT,
            champion_after  TEXT,
            champion_final  REAL,
            candidate_final REAL,
            diff_mean       REAL,
            diff_lower      REAL,
            decision        TEXT,
            reason          TEXT,
            stats_json      TEXT
        );
        CREATE TABLE evolve_items (
            id           INTEGER PRIMARY KEY,
            round_id     INTEGER NOT NULL REFERENCES evolve_rounds (id),
            exchange_id  TEXT NOT NULL,
            reasons      TEXT NOT NULL,
            final        REAL,
            label_source TEXT NOT NULL CHECK (label_source IN ('human', 'cloud', 'none')),
            review_id    INTEGER,
            UNIQUE (exchange_id)
        );
        """,
    ),
    (
        # a label can be the cloud reply already given while serving: its own provenance
        "0007_evolve_served_cloud",
        """
        CREATE TABLE evolve_items_new (
            id           INTEGER PRIMARY KEY,
            round_id     INTEGER NOT NULL REFERENCES evolve_rounds (id),
            exchange_id  TEXT NOT NULL,
            reasons      TEXT NOT NULL,
            final        REAL,
            label_source TEXT NOT NULL
                         CHECK (label_source IN ('human', 'cloud', 'served-cloud', 'none')),
            review_id    INTEGER,
            UNIQUE (exchange_id)
        );
        INSERT INTO evolve_items_new SELECT id, round_id, exchange_id, reasons, final, label_source,
                                            review_id FROM evolve_items;
        DROP TABLE evolve_items;
        ALTER TABLE evolve_items_new RENAME TO evolve_items;
        """,
    ),
    (
        "0008_knowledge",
        """
        ALTER TABLE serve_exchanges ADD COLUMN answered_from TEXT;  -- model | memory (end only)
        ALTER TABLE serve_exchanges ADD COLUMN knowledge_json TEXT; -- chunk ids, memory id, version
        ALTER TABLE cloud_egress ADD COLUMN knowledge_ids TEXT;     -- chunks that went to the cloud
        CREATE TABLE knowledge_memory (
            id           TEXT PRIMARY KEY,
            exchange_id  TEXT REFERENCES serve_exchanges (id),
            review_id    INTEGER UNIQUE,
            origin       TEXT NOT NULL CHECK (origin IN ('approved', 'correction')),
            query_masked TEXT NOT NULL,
            reply_masked TEXT NOT NULL,
            created_at   TEXT NOT NULL
        );
        CREATE INDEX knowledge_memory_created ON knowledge_memory (created_at);
        """,
    ),
    (
        "0009_grounded",
        """
        ALTER TABLE serve_exchanges ADD COLUMN grounded REAL;   -- supported share of checkable facts
        ALTER TABLE serve_exchanges ADD COLUMN nonanswer TEXT;  -- echo | restates | filler | empty
        """,
    ),
    (
        # Hand-off to a person: a staff reply is an exchange answered by 'staff' (the CHECK is
        # rebuilt), the queue of conversations a person holds, and the live messages both ways.
        "0010_handoff",
        """-- rebuild
        DROP VIEW serve_corrections;
        CREATE TABLE serve_exchanges_new (
            id                      TEXT PRIMARY KEY,
            conversation_id         TEXT NOT NULL REFERENCES serve_conversations (id),
            model                   TEXT NOT NULL,
            context_json            TEXT NOT NULL,
            query                   TEXT NOT NULL,
            reply                   TEXT NOT NULL,
            end_reply               TEXT,
            answered_by             TEXT NOT NULL
                                    CHECK (answered_by IN ('end', 'cloud', 'handoff', 'staff')),
            escalation              TEXT,
            cloud_status            TEXT,
            cloud_request_masked    TEXT,
            cloud_reply_masked      TEXT,
            match_score             REAL,
            confidence              REAL,
            prompt_tokens           INTEGER NOT NULL DEFAULT 0,
            completion_tokens       INTEGER NOT NULL DEFAULT 0,
            cloud_prompt_tokens     INTEGER NOT NULL DEFAULT 0,
            cloud_completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost                    REAL NOT NULL DEFAULT 0,
            first_token_ms          REAL,
            latency_ms              REAL NOT NULL,
            finish_reason           TEXT NOT NULL,
            created_at              TEXT NOT NULL,
            answered_from           TEXT,
            knowledge_json          TEXT,
            grounded                REAL,
            nonanswer               TEXT,
            staff                   TEXT  -- who answered, for answered_by = 'staff'
        );
        INSERT INTO serve_exchanges_new (id, conversation_id, model, context_json, query, reply, end_reply, answered_by, escalation, cloud_status, cloud_request_masked, cloud_reply_masked, match_score, confidence, prompt_tokens, completion_tokens, cloud_prompt_tokens, cloud_completion_tokens, cost, first_token_ms, latency_ms, finish_reason, created_at, answered_from, knowledge_json, grounded, nonanswer) SELECT id, conversation_id, model, context_json, query, reply, end_reply, answered_by, escalation, cloud_status, cloud_request_masked, cloud_reply_masked, match_score, confidence, prompt_tokens, completion_tokens, cloud_prompt_tokens, cloud_completion_tokens, cost, first_token_ms, latency_ms, finish_reason, created_at, answered_from, knowledge_json, grounded, nonanswer FROM serve_exchanges;
        DROP TABLE serve_exchanges;
        ALTER TABLE serve_exchanges_new RENAME TO serve_exchanges;
        CREATE INDEX serve_exchanges_conversation ON serve_exchanges (conversation_id, created_at);
        CREATE INDEX serve_exchanges_created ON serve_exchanges (created_at);
        CREATE VIEW serve_corrections AS
            SELECT r.id AS review_id, e.id AS exchange_id, e.context_json, e.query,
                   r.corrected_reply AS reply, r.created_at
            FROM serve_reviews r JOIN serve_exchanges e ON e.id = r.exchange_id
            WHERE r.corrected_reply IS NOT NULL AND trim(r.corrected_reply) != '';
        CREATE TABLE serve_handoffs (
            id              INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES serve_conversations (id),
            reason          TEXT NOT NULL,  -- requested | taken_over | an escalation reason
            status          TEXT NOT NULL CHECK (status IN ('waiting', 'claimed', 'released', 'closed')),
            requested_at    TEXT NOT NULL,
            claimed_by      TEXT,
            claimed_at      TEXT,
            first_reply_at  TEXT,
            ended_at        TEXT
        );
        -- one open hand-off per conversation: a second request joins the first
        CREATE UNIQUE INDEX serve_handoffs_open ON serve_handoffs (conversation_id)
            WHERE status IN ('waiting', 'claimed');
        CREATE INDEX serve_handoffs_requested ON serve_handoffs (requested_at);
        CREATE TABLE serve_handoff_messages (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- the events cursor: only grows
            handoff_id      INTEGER NOT NULL REFERENCES serve_handoffs (id),
            conversation_id TEXT NOT NULL REFERENCES serve_conversations (id),
            sender          TEXT NOT NULL CHECK (sender IN ('customer', 'staff', 'system')),
            staff           TEXT,
            text            TEXT NOT NULL,
            exchange_id     TEXT REFERENCES serve_exchanges (id),  -- a staff reply's exchange
            created_at      TEXT NOT NULL
        );
        CREATE INDEX serve_handoff_messages_conversation ON serve_handoff_messages (conversation_id, id);
        """,
    ),
    (
        # The champion pointer in the store, for replicas on other boxes: the adapters it names
        # (a gzipped tar of the verified folder) and one row per registry with a version.
        "0011_champion",
        """
        CREATE TABLE champion_adapters (
            id         TEXT PRIMARY KEY,
            sha256     TEXT NOT NULL,  -- of the archive
            archive    BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE champion_pointer (
            name       TEXT PRIMARY KEY,  -- 'champion'
            adapter_id TEXT REFERENCES champion_adapters (id),  -- NULL: the base model
            previous   TEXT NOT NULL,     -- JSON list, the rollback stack
            version    INTEGER NOT NULL,  -- +1 on every promotion and rollback
            reason     TEXT,
            updated_at TEXT NOT NULL
        );
        """,
    ),
    (
        # what each replica did with each champion version: loaded, or failed (and why)
        "0012_champion_loads",
        """
        CREATE TABLE champion_loads (
            id         INTEGER PRIMARY KEY,
            replica    TEXT NOT NULL,  -- host/pid/instance
            version    INTEGER,        -- the champion_pointer version (NULL: a file registry)
            adapter_id TEXT,           -- NULL: the base model
            status     TEXT NOT NULL CHECK (status IN ('loaded', 'failed')),
            error      TEXT,
            at         TEXT NOT NULL
        );
        CREATE INDEX champion_loads_at ON champion_loads (at);
        """,
    ),
]
