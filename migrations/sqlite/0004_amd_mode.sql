-- Answering machines (SPEC §12); see the PostgreSQL migration of the same number.
ALTER TABLE campaigns ADD COLUMN amd_mode TEXT NOT NULL DEFAULT 'off' CHECK (amd_mode IN ('off', 'wait'));
ALTER TABLE campaigns ADD COLUMN amd_wait_timeout_ms INTEGER NOT NULL DEFAULT 4000
    CHECK (amd_wait_timeout_ms BETWEEN 0 AND 60000);
