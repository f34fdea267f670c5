-- Login throttling (SPEC §4), shared by every Lambda container: consecutive failures per
-- account and failures per source address in a 15-minute window. One row per (scope,
-- subject), for accounts that do not exist too, so a throttled login looks the same whether
-- the account exists or not. A success deletes the account's row.
CREATE TABLE login_failures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('account', 'source')),
    subject TEXT NOT NULL,
    failures INT NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    blocked_until TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX login_failures_subject ON login_failures (scope, subject);
-- Stale rows (a day without a failure) are purged a few at a time by later failures.
CREATE INDEX login_failures_stale ON login_failures (updated_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON login_failures TO keystone_app;

-- Counts one failed login of `account` from `source` (NULL: unknown) and blocks what crossed
-- its threshold: the account from its `account_threshold`th consecutive failure on, for
-- 2^(failures - threshold) seconds up to `max_block_seconds`; the source once it has
-- `source_threshold` failures in `source_window_seconds`, until that window ends.
CREATE FUNCTION keystone_login_failed(
    account TEXT, source TEXT, account_threshold INT, source_threshold INT,
    source_window_seconds INT, max_block_seconds INT
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n INT;
    started TIMESTAMPTZ;
BEGIN
    INSERT INTO login_failures AS f (scope, subject, failures)
    VALUES ('account', account, 1)
    ON CONFLICT (scope, subject) DO UPDATE SET failures = f.failures + 1, updated_at = now()
    RETURNING failures INTO n;
    IF n >= account_threshold THEN
        UPDATE login_failures
        SET blocked_until = now() + make_interval(
                secs => least(max_block_seconds, power(2, least(n - account_threshold, 30))))
        WHERE scope = 'account' AND subject = account;
    END IF;

    IF source IS NOT NULL THEN
        INSERT INTO login_failures AS f (scope, subject, failures)
        VALUES ('source', source, 1)
        ON CONFLICT (scope, subject) DO UPDATE SET
            failures = CASE WHEN f.window_started_at
                                 < now() - make_interval(secs => source_window_seconds)
                            THEN 1 ELSE f.failures + 1 END,
            window_started_at = CASE WHEN f.window_started_at
                                          < now() - make_interval(secs => source_window_seconds)
                                     THEN now() ELSE f.window_started_at END,
            updated_at = now()
        RETURNING failures, window_started_at INTO n, started;
        IF n >= source_threshold THEN
            UPDATE login_failures
            SET blocked_until = started + make_interval(secs => source_window_seconds)
            WHERE scope = 'source' AND subject = source;
        END IF;
    END IF;

    DELETE FROM login_failures WHERE id IN (
        SELECT id FROM login_failures
        WHERE updated_at < now() - interval '1 day'
          AND (blocked_until IS NULL OR blocked_until < now())
        ORDER BY updated_at LIMIT 100 FOR UPDATE SKIP LOCKED);
END
$$;
