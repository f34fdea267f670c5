-- A collector's tokens end when the collector does (SPEC §4): every collector request reads
-- the collector's status and this time with the statement it already makes, and refuses a
-- token issued before it. Logout, an admin's status change and a password reset set it.
ALTER TABLE data_collectors ADD COLUMN tokens_revoked_at TIMESTAMPTZ NULL;
