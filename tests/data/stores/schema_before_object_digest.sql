-- The SQL store schema before object_digest (tiops.stores.sql.SCHEMA then), to test the migration.
-- {bool} and {false} are the dialect's boolean type and false.
CREATE TABLE IF NOT EXISTS stix_versions (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked {bool} NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    object TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS stix_current (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked {bool} NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    managed {bool} NOT NULL DEFAULT {false},
    object TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stix_current_type ON stix_current (type);
CREATE TABLE IF NOT EXISTS tiops_lock (
    target TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
)
