//! The pinning check (SPEC §6, §9): reads PostgreSQL's statement log (`log_statement = all`,
//! with the application name in `log_line_prefix`, as tests/support/postgres.sh starts the test
//! cluster) and reports every statement a session of one application sent that would make RDS
//! Proxy pin that session to its server connection: `SET`/`RESET`, `set_config`, SQL-level
//! prepared statements (`PREPARE`, `EXECUTE`, `DEALLOCATE`), session advisory locks, `LISTEN`,
//! temporary tables, sequences and views, cursors kept past their transaction, `DISCARD` and
//! `LOAD`. Transaction-level advisory locks (`pg_advisory_xact_lock`) and protocol-level
//! prepared statements do not pin and are not reported.
//!
//! PgBouncer, the stand-in proxy of the tests, keeps its server connections in step with each
//! client's startup parameters by sending `SET client_encoding=…;SET application_name=…;…`
//! itself: those statements come from the proxy, not from the application, and are left aside
//! when they consist of nothing else.

use std::fmt;

/// One statement that would pin, where it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offence {
    /// 1-based line of the log entry.
    pub line: usize,
    /// What it does (`SET`, `set_config`, …).
    pub kind: &'static str,
    /// The statement as logged.
    pub statement: String,
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.kind, self.statement)
    }
}

/// What the scan saw: how many statements `application` sent, and which of them would pin.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    pub statements: usize,
    pub offences: Vec<Offence>,
}

/// Scans a statement log for the statements of sessions named `application`.
pub fn scan(log: &str, application: &str) -> Scan {
    let mut result = Scan::default();
    for (line, entry) in entries(log) {
        if entry_application(entry) != Some(application) {
            continue;
        }
        let Some(statement) = logged_statement(entry) else {
            continue;
        };
        result.statements += 1;
        if let Some(kind) = pinning_kind(statement) {
            result.offences.push(Offence {
                line,
                kind,
                statement: statement.trim().to_owned(),
            });
        }
    }
    result
}

/// Log entries with the line each starts on: a line that begins with a timestamp starts an
/// entry, the lines after it (a statement's own newlines, tab-indented) continue it. One pass.
fn entries(log: &str) -> Vec<(usize, &str)> {
    let mut entries = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in log.split_inclusive('\n').enumerate() {
        if starts_entry(line) {
            if let Some((number, start)) = current.take() {
                entries.push((number, log[start..offset].trim_end_matches('\n')));
            }
            current = Some((index + 1, offset));
        }
        offset += line.len();
    }
    if let Some((number, start)) = current {
        entries.push((number, log[start..].trim_end_matches('\n')));
    }
    entries
}

/// `2026-12-06 14:00:00.123 UTC …`
fn starts_entry(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 19
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b' '
        && bytes[13] == b':'
}

/// The `app=` field of the prefix (`%m [%p] app=%a user=%u db=%d `).
fn entry_application(entry: &str) -> Option<&str> {
    let start = entry.find(" app=")? + " app=".len();
    let end = start + entry[start..].find(" user=")?;
    Some(&entry[start..end])
}

/// The SQL of a `statement:` (simple protocol) or `execute <name>:` (extended protocol) entry.
fn logged_statement(entry: &str) -> Option<&str> {
    let (_, message) = entry.split_once("LOG:  ")?;
    if let Some(sql) = message.strip_prefix("statement: ") {
        return Some(sql);
    }
    let rest = message.strip_prefix("execute ")?;
    let (_, sql) = rest.split_once(": ")?;
    Some(sql)
}

/// Why `sql` would pin a session, if it would.
pub fn pinning_kind(sql: &str) -> Option<&'static str> {
    let lowered = strip_comments(sql).to_lowercase();
    let parts: Vec<&str> = lowered
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !parts.is_empty() && parts.iter().all(|p| is_proxy_parameter_sync(p)) {
        return None;
    }
    const ANYWHERE: [(&str, &str); 6] = [
        ("set_config(", "set_config"),
        ("pg_advisory_lock(", "session advisory lock"),
        ("pg_advisory_lock_shared(", "session advisory lock"),
        ("pg_try_advisory_lock(", "session advisory lock"),
        ("pg_try_advisory_lock_shared(", "session advisory lock"),
        ("dblink_connect(", "dblink session"),
    ];
    for (needle, kind) in ANYWHERE {
        if lowered.contains(needle) {
            return Some(kind);
        }
    }
    for part in &parts {
        let words: Vec<&str> = part.split_whitespace().collect();
        let first = words.first().copied().unwrap_or_default();
        let kind = match first {
            "set" | "reset" => Some("SET"),
            "prepare" | "execute" | "deallocate" => Some("SQL prepared statement"),
            "listen" => Some("LISTEN"),
            "discard" => Some("DISCARD"),
            "load" => Some("LOAD"),
            "declare" if words.windows(2).any(|w| w == ["with", "hold"]) => {
                Some("cursor WITH HOLD")
            }
            _ => None,
        };
        if kind.is_some() {
            return kind;
        }
        let temporary = words.windows(2).any(|w| {
            matches!(w[0], "temp" | "temporary")
                && matches!(w[1], "table" | "sequence" | "view" | "recursive")
        });
        if temporary && matches!(first, "create" | "select" | "with") {
            return Some("temporary object");
        }
    }
    None
}

/// `set client_encoding='utf8'`, `set application_name='keystone'`, … as PgBouncer sends them
/// to match a server connection to its client's startup parameters.
fn is_proxy_parameter_sync(part: &str) -> bool {
    const PARAMETERS: [&str; 5] = [
        "client_encoding",
        "datestyle",
        "timezone",
        "standard_conforming_strings",
        "application_name",
    ];
    part.strip_prefix("set ").is_some_and(|rest| {
        rest.split_once('=')
            .is_some_and(|(name, _)| PARAMETERS.contains(&name.trim()))
    })
}

/// `sql` without `--` line comments and `/* */` block comments (string literals are not
/// special-cased: a comment marker inside one only shortens what is scanned).
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    loop {
        let line = rest.find("--");
        let block = rest.find("/*");
        match (line, block) {
            (None, None) => {
                out.push_str(rest);
                return out;
            }
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |n| &rest[l + n..]);
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                out.push(' ');
                rest = rest[b..].find("*/").map_or("", |e| &rest[b + e + 2..]);
            }
            (Some(_), None) => unreachable!("handled by the guard above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "2026-12-06 14:00:00.123 UTC [4242] app=keystone user=keystone_app db=k ";

    fn log(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| format!("{PREFIX}{l}\n"))
            .collect::<String>()
    }

    #[test]
    fn a_set_config_in_the_statement_that_begins_a_transaction_is_reported() {
        let text = log(&[
            "LOG:  statement: BEGIN; SELECT set_config('lock_timeout', '5000', true)",
            "LOG:  execute sqlx_s_1: SELECT id FROM orders WHERE id = $1 FOR UPDATE",
        ]);
        let scan = scan(&text, "keystone");
        assert_eq!(scan.statements, 2);
        assert_eq!(scan.offences.len(), 1, "{:?}", scan.offences);
        assert_eq!(scan.offences[0].kind, "set_config");
        assert_eq!(scan.offences[0].line, 1);
    }

    #[test]
    fn every_kind_that_pins_is_reported() {
        for (sql, kind) in [
            ("SET lock_timeout = '5s'", "SET"),
            ("set local statement_timeout to 1000", "SET"),
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET"),
            ("RESET ALL", "SET"),
            ("PREPARE q AS SELECT 1", "SQL prepared statement"),
            ("EXECUTE q", "SQL prepared statement"),
            ("DEALLOCATE ALL", "SQL prepared statement"),
            ("SELECT pg_advisory_lock(42)", "session advisory lock"),
            ("SELECT pg_try_advisory_lock(1, 2)", "session advisory lock"),
            ("LISTEN outbox", "LISTEN"),
            ("CREATE TEMP TABLE t (id int)", "temporary object"),
            ("create temporary table t as select 1", "temporary object"),
            ("SELECT 1 INTO TEMP TABLE t", "temporary object"),
            ("DISCARD ALL", "DISCARD"),
            (
                "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                "cursor WITH HOLD",
            ),
            ("LOAD 'auto_explain'", "LOAD"),
            ("/* why */ SET search_path = x", "SET"),
        ] {
            assert_eq!(pinning_kind(sql), Some(kind), "{sql}");
        }
    }

    #[test]
    fn what_does_not_pin_is_not_reported() {
        for sql in [
            "BEGIN",
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "COMMIT",
            "SELECT pg_advisory_xact_lock($1)",
            "UPDATE tasks SET status = 'completed' WHERE id = ANY($1)",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT current_setting('lock_timeout')",
            "DECLARE c CURSOR FOR SELECT 1",
            "SET client_encoding='UTF8';SET application_name='keystone';",
        ] {
            assert_eq!(pinning_kind(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_proxy_parameter_sync_does_not_hide_a_set_sent_with_it() {
        assert_eq!(
            pinning_kind("SET application_name='keystone'; SET lock_timeout='1s'"),
            Some("SET")
        );
    }

    #[test]
    fn only_the_named_application_is_read_and_multi_line_statements_stay_whole() {
        let text = format!(
            "{}2026-12-06 14:00:00.124 UTC [4243] app=fixtures user=postgres db=k LOG:  statement: SET x = 1\n\
             {PREFIX}LOG:  statement: SELECT 1\n\tFROM t\n\tWHERE set_config('a', 'b', true) IS NOT NULL\n\
             {PREFIX}DETAIL:  parameters: $1 = 'SET a = b'\n",
            log(&["LOG:  duration: 1.0 ms"])
        );
        let scan = scan(&text, "keystone");
        assert_eq!(scan.statements, 1);
        assert_eq!(scan.offences.len(), 1, "{:?}", scan.offences);
        assert_eq!(scan.offences[0].line, 3);
        assert!(scan.offences[0].statement.contains("WHERE set_config"));
    }

    #[test]
    fn comments_are_not_statements() {
        assert_eq!(pinning_kind("-- SET x = 1\nSELECT 1"), None);
        assert_eq!(pinning_kind("SELECT /* set_config( */ 1"), None);
    }
}
