-- Answering machines (SPEC §12): per campaign, start the dialogue on the answer
-- (`off`) or hold it for the machine-detection verdict (`wait`, at most
-- `amd_wait_timeout_ms`). Existing campaigns keep today's behaviour (`off`).
ALTER TABLE campaigns ADD COLUMN amd_mode text NOT NULL DEFAULT 'off' CHECK (amd_mode IN ('off', 'wait'));
ALTER TABLE campaigns ADD COLUMN amd_wait_timeout_ms integer NOT NULL DEFAULT 4000
    CHECK (amd_wait_timeout_ms BETWEEN 0 AND 60000);
