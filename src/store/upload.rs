//! Checking an upload of contacts row by row: every problem is reported with its
//! row number (the first hundred), and nothing is written unless every row is
//! good. A phone number is the campaign's once: a number stored already, or
//! repeated in the upload, is refused (`duplicate_phone_number`) or skipped.

use std::collections::HashMap;

use serde_json::{json, Value};
use uuid::Uuid;

use super::input::{NewContact, OnDuplicate};
use super::StoreError;

/// Most problems listed in `error.details`.
const MAX_LISTED: usize = 100;

/// A row's problem: its number (from 0), code and message.
pub(crate) struct Problem {
    row: usize,
    code: &'static str,
    message: String,
}

pub(crate) fn problem(row: usize, err: StoreError) -> Problem {
    let (code, message) = match err {
        StoreError::Refused { code, message, .. } => (code, message),
        other => ("invalid_request", other.to_string()),
    };
    Problem { row, code, message }
}

/// The upload refused for its rows' problems: the first one's code, every row
/// listed (up to a hundred).
pub(crate) fn refused(problems: Vec<Problem>) -> StoreError {
    let first = &problems[0];
    let more = match problems.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more rows; see details)"),
    };
    let details: Vec<Value> = problems
        .iter()
        .take(MAX_LISTED)
        .map(|p| json!({ "row": p.row, "code": p.code, "message": p.message }))
        .collect();
    StoreError::Refused {
        conflict: false,
        code: first.code,
        message: format!("contacts[{}]: {}{more}; nothing was added", first.row, first.message),
        details: Some(Value::Array(details)),
    }
}

/// Splits off the rows whose phone number is stored already (`stored`: number and
/// contact) or appears in an earlier row. With `Reject`, any such row refuses the
/// upload (409); with `Skip`, they are returned as skipped.
pub(crate) fn without_duplicates(
    rows: Vec<(usize, NewContact)>,
    stored: Vec<(String, Uuid)>,
    on_duplicate: OnDuplicate,
) -> Result<(Vec<NewContact>, Vec<Value>), StoreError> {
    let stored: HashMap<String, Uuid> = stored.into_iter().collect();
    let mut first_row: HashMap<String, usize> = HashMap::new();
    let mut keep = Vec::with_capacity(rows.len());
    let mut duplicates = Vec::new();
    for (row, contact) in rows {
        let phone = contact.phone_number.clone();
        if let Some(id) = stored.get(&phone) {
            duplicates.push(json!({ "row": row, "phone_number": phone, "duplicate_of_contact": id }));
        } else if let Some(first) = first_row.get(&phone) {
            duplicates.push(json!({ "row": row, "phone_number": phone, "duplicate_of_row": first }));
        } else {
            first_row.insert(phone, row);
            keep.push(contact);
        }
    }
    if duplicates.is_empty() || on_duplicate == OnDuplicate::Skip {
        return Ok((keep, duplicates));
    }
    let n = duplicates.len();
    let first = duplicates[0]["row"].clone();
    duplicates.truncate(MAX_LISTED);
    Err(StoreError::Refused {
        conflict: true,
        code: "duplicate_phone_number",
        message: format!(
            "{n} row(s) repeat a phone number of the campaign, the first contacts[{first}]; nothing was added \
             (send \"on_duplicate\": \"skip\" to add the others)"
        ),
        details: Some(Value::Array(duplicates)),
    })
}

/// The unique index caught a number added concurrently by another upload.
pub(crate) fn raced(err: StoreError) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::conflict(
            "duplicate_phone_number",
            "a phone number of this upload was added to the campaign meanwhile; nothing was added, retry",
        ),
        other => other,
    }
}
