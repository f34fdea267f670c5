//! The trace context of the request being served, for the rows it writes that outlive it (the
//! recorder outbox). Set by the HTTP layer around each request's future; absent elsewhere.

tokio::task_local! {
    static TRACE_CONTEXT: Option<String>;
}

/// Runs `work` with `context` as the current request's trace context.
pub async fn scope<F: std::future::Future>(context: Option<String>, work: F) -> F::Output {
    TRACE_CONTEXT.scope(context, work).await
}

/// The current request's trace context, if any.
pub fn current() -> Option<String> {
    TRACE_CONTEXT.try_with(Clone::clone).ok().flatten()
}

/// The longest trace context kept (an X-Ray header is about 90 characters).
const MAX_LEN: usize = 256;

/// A well-formed X-Ray trace header (`Root=1-{8 hex}-{24 hex}`, optionally `Parent={16 hex}`
/// and `Sampled=0|1|?`), rebuilt from its parts; `None` for anything else. AWS's own other
/// fields (`Lineage`, `Self`) are dropped; any other field, a repeated one or a malformed value
/// refuses the whole header: SQS refuses a malformed `AWSTraceHeader`, so a caller's junk must
/// never be stored or sent (SPEC §7 "Trace context").
pub fn xray_header(raw: &str) -> Option<String> {
    if raw.len() > MAX_LEN {
        return None;
    }
    let hex = |value: &str, len: usize| {
        value.len() == len
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let (mut root, mut parent, mut sampled) = (None, None, None);
    // Spaces after a `;` are tolerated (proxies add them); no other whitespace is.
    for part in raw
        .split(';')
        .map(|part| part.trim_matches(' '))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = part.split_once('=')?;
        let slot = match key {
            "Root" => {
                let mut pieces = value.split('-');
                let valid = pieces.next() == Some("1")
                    && pieces.next().is_some_and(|time| hex(time, 8))
                    && pieces.next().is_some_and(|id| hex(id, 24))
                    && pieces.next().is_none();
                valid.then_some(())?;
                &mut root
            }
            "Parent" => {
                hex(value, 16).then_some(())?;
                &mut parent
            }
            "Sampled" => {
                matches!(value, "0" | "1" | "?").then_some(())?;
                &mut sampled
            }
            "Lineage" | "Self" => continue,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    let mut header = format!("Root={}", root?);
    if let Some(parent) = parent {
        header.push_str(";Parent=");
        header.push_str(parent);
    }
    if let Some(sampled) = sampled {
        header.push_str(";Sampled=");
        header.push_str(sampled);
    }
    Some(header)
}

/// Keystone's correlation id for a request without an X-Ray header: `Keystone-Request=` and
/// the request id, cut to letters, digits and `-` (API Gateway's ids are such).
pub fn correlation_id(request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!("Keystone-Request={id}")
}

/// `context` if it is a trace context Keystone writes (an X-Ray header, rebuilt, or a
/// correlation id), else `None`: what rides with a message, even from rows stored before
/// headers were checked.
pub fn trusted(context: &str) -> Option<String> {
    xray_header(context).or_else(|| {
        let id = context.strip_prefix("Keystone-Request=")?;
        (!id.is_empty() && correlation_id(id) == context).then(|| context.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn well_formed_headers_are_kept_in_canonical_form() {
        assert_eq!(xray_header(ROOT).as_deref(), Some(ROOT));
        let full = format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(xray_header(&full).as_deref(), Some(full.as_str()));
        // Lambda's own header carries a lineage; it is dropped, order and spaces normalized.
        assert_eq!(
            xray_header(&format!(
                "Sampled=0; {ROOT};Parent=53995c3f42cd8ad8;Lineage=1:bf9ec8cb:0"
            ))
            .as_deref(),
            Some(format!("{ROOT};Parent=53995c3f42cd8ad8;Sampled=0").as_str())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for forged in [
            "",
            "Root=",
            "Root=forged",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-5759E988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793-00",
            &format!("{ROOT};Parent=xyz"),
            &format!("{ROOT};Sampled=yes"),
            &format!("{ROOT};Evil=1"),
            &format!("{ROOT};{ROOT}"),
            &format!("{ROOT};Parent"),
            &format!("{ROOT};Parent=53995c3f42cd8ad8\n"),
            "Parent=53995c3f42cd8ad8;Sampled=1",
            &format!("{ROOT};Lineage={}", "x".repeat(300)),
        ] {
            assert_eq!(xray_header(forged), None, "{forged:?}");
            assert_eq!(trusted(forged), None, "{forged:?}");
        }
    }

    #[test]
    fn correlation_ids_are_trusted_only_as_keystone_writes_them() {
        let id = correlation_id("abc-123");
        assert_eq!(id, "Keystone-Request=abc-123");
        assert_eq!(trusted(&id).as_deref(), Some(id.as_str()));
        assert_eq!(correlation_id("a b\n<c>"), "Keystone-Request=abc");
        assert_eq!(trusted("Keystone-Request=a b"), None);
        assert_eq!(trusted("Keystone-Request="), None);
    }
}
