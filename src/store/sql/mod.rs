//! The statements, written once for both backends and grouped by concern:
//! [`events`] (the inbox), [`attempts`], [`campaigns`], [`contacts`],
//! [`outbox`], [`reconcile`], [`retention`] and the console's [`views`]. Each function takes a connection (a pool's or a transaction's) and
//! is generic over the [`Dialect`].
//!
//! Rows are written from [`Cols`]: each column's name beside its value, so the SQL
//! text and the bound parameters are generated from one list and cannot drift.

pub(crate) mod attempts;
pub(crate) mod campaigns;
pub(crate) mod contacts;
pub(crate) mod counts;
pub(crate) mod events;
pub(crate) mod outbox;
pub(crate) mod reconcile;
pub(crate) mod retention;
pub(crate) mod views;

use super::dialect::{query, Arg, Dialect};
use super::StoreResult;

/// Named values for one row: `(column, value)` in statement order.
pub(crate) type Cols<'a> = Vec<(&'static str, Arg<'a>)>;

/// `INSERT INTO table (a, b, …) VALUES ($first, $first+1, …)`.
pub(crate) fn insert_sql(table: &str, cols: &Cols<'_>, first: usize) -> String {
    let names: Vec<&str> = cols.iter().map(|(name, _)| *name).collect();
    let params: Vec<String> = (first..first + cols.len()).map(|i| format!("${i}")).collect();
    format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), params.join(", "))
}

/// `INSERT INTO table (a, b) VALUES ($1, $2), ($3, $4), …`: one statement for
/// several rows of the same columns.
pub(crate) fn insert_rows_sql(table: &str, rows: &[Cols<'_>]) -> String {
    let Some(first) = rows.first() else { return String::new() };
    let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
    let width = names.len();
    let tuples: Vec<String> = (0..rows.len()).map(|r| format!("({})", params(1 + r * width, width))).collect();
    format!("INSERT INTO {table} ({}) VALUES {}", names.join(", "), tuples.join(", "))
}

/// `a = $first, b = $first+1, …`.
pub(crate) fn set_sql(cols: &Cols<'_>, first: usize) -> String {
    let sets: Vec<String> = cols.iter().enumerate().map(|(i, (name, _))| format!("{name} = ${}", first + i)).collect();
    sets.join(", ")
}

/// The values of `cols`, in order, to bind after whatever precedes them.
pub(crate) fn values<'a>(cols: Cols<'a>) -> impl Iterator<Item = Arg<'a>> {
    cols.into_iter().map(|(_, arg)| arg)
}

/// `$first, $first+1, …` for a list bound by `IN (…)`.
pub(crate) fn params(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) async fn execute<'a, D: Dialect>(
    conn: &'a mut D::Connection,
    sql: &'a str,
    args: impl IntoIterator<Item = Arg<'a>>,
) -> StoreResult<u64> {
    Ok(D::execute(conn, query::<D>(sql, args)).await?)
}

pub(crate) async fn fetch_all<'a, D: Dialect>(
    conn: &'a mut D::Connection,
    sql: &'a str,
    args: impl IntoIterator<Item = Arg<'a>>,
) -> StoreResult<Vec<D::Row>> {
    Ok(D::fetch_all(conn, query::<D>(sql, args)).await?)
}

pub(crate) async fn fetch_optional<'a, D: Dialect>(
    conn: &'a mut D::Connection,
    sql: &'a str,
    args: impl IntoIterator<Item = Arg<'a>>,
) -> StoreResult<Option<D::Row>> {
    Ok(D::fetch_optional(conn, query::<D>(sql, args)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_from_the_column_list() {
        let cols: Cols = vec![("a", Arg::Int(Some(1))), ("b", Arg::Text(None)), ("c", Arg::Bool(true))];
        assert_eq!(insert_sql("t", &cols, 1), "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)");
        assert_eq!(set_sql(&cols, 4), "a = $4, b = $5, c = $6");
        assert_eq!(params(2, 3), "$2, $3, $4");
        let rows: Vec<Cols> = vec![vec![("a", Arg::Int(Some(1))), ("b", Arg::Bool(true))]; 2];
        assert_eq!(insert_rows_sql("t", &rows), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        assert_eq!(values(cols).count(), 3);
    }
}
