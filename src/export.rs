//! Per-contact results as CSV (RFC 4180, via the `csv` crate): one row per
//! contact with its state, last outcome and latest call. A free-text field that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is prefixed with
//! `'`; phone numbers are E.164 and always start with `+`, so they are left as is.

use bytes::Bytes;

use crate::store::ContactResult;

const COLUMNS: [&str; 16] = [
    "contact_id",
    "external_id",
    "phone_number",
    "timezone",
    "state",
    "do_not_call",
    "attempts_count",
    "last_outcome",
    "last_attempt_at",
    "next_attempt_at",
    "last_call_id",
    "last_call_status",
    "last_call_answered_by",
    "last_call_duration_seconds",
    "last_call_error_code",
    "updated_at",
];

pub fn csv_header() -> Result<Bytes, std::io::Error> {
    write(|w| w.write_record(COLUMNS))
}

pub fn csv_rows(rows: &[ContactResult]) -> Result<Bytes, std::io::Error> {
    write(|w| {
        for r in rows {
            let c = &r.contact;
            let call = r.last_call.as_ref();
            let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
            w.write_record([
                c.id.to_string(),
                c.external_id.as_deref().map(inert).unwrap_or_default(),
                c.phone_number.clone(),
                c.timezone.clone().unwrap_or_default(),
                c.state.to_string(),
                c.do_not_call.to_string(),
                c.attempts_count.to_string(),
                c.last_outcome.map(|o| o.to_string()).unwrap_or_default(),
                ts(c.last_attempt_at),
                ts(c.next_attempt_at),
                call.map(|a| inert(&a.call_id)).unwrap_or_default(),
                call.map(|a| a.status.to_string()).unwrap_or_default(),
                call.and_then(|a| a.answered_by.as_deref().map(inert)).unwrap_or_default(),
                call.and_then(|a| a.duration_seconds).map(|d| d.to_string()).unwrap_or_default(),
                call.and_then(|a| a.error_code.as_deref().map(inert)).unwrap_or_default(),
                c.updated_at.to_rfc3339(),
            ])?;
        }
        Ok(())
    })
}

/// A value a spreadsheet will show, not evaluate.
fn inert(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

fn write(f: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> Result<Bytes, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    f(&mut w).map_err(std::io::Error::other)?;
    w.into_inner().map(Bytes::from).map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_made_inert_and_fields_are_quoted() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("crm-42"), "crm-42");
        let header = String::from_utf8(csv_header().unwrap().to_vec()).unwrap();
        assert!(header.starts_with("contact_id,external_id,phone_number,"));
        assert!(header.ends_with("updated_at\n"));
    }
}
