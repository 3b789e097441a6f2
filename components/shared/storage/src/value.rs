//! Backend-neutral parameter and column values, and rows addressed by column name.

use crate::DbError;

/// A value bound to a statement or read from a row.
///
/// There is deliberately no float constructor helper: money is always an
/// integer in minor units. `Real` exists only to read what SQL computes
/// (ranking scores and the like).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Integer(v as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// The result of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        Self { columns, rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Iterate rows with by-name access.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row { columns: &self.columns, values })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// One row; getters fail with a clear error instead of panicking on a schema mismatch.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The raw value of a column.
    pub fn value(&self, column: &str) -> Result<&'a Value, DbError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| DbError::Other(format!("no column `{column}` in result")))
    }

    /// A non-null integer column.
    pub fn int(&self, column: &str) -> Result<i64, DbError> {
        match self.value(column)? {
            Value::Integer(i) => Ok(*i),
            other => Err(mismatch(column, "integer", other)),
        }
    }

    /// A nullable integer column.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, DbError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(*i)),
            other => Err(mismatch(column, "integer or null", other)),
        }
    }

    /// A non-null text column.
    pub fn text(&self, column: &str) -> Result<String, DbError> {
        match self.value(column)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch(column, "text", other)),
        }
    }

    /// A nullable text column.
    pub fn opt_text(&self, column: &str) -> Result<Option<String>, DbError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(mismatch(column, "text or null", other)),
        }
    }

    /// A 0/1 integer column as a bool.
    pub fn bool(&self, column: &str) -> Result<bool, DbError> {
        Ok(self.int(column)? != 0)
    }
}

fn mismatch(column: &str, wanted: &str, got: &Value) -> DbError {
    DbError::Other(format!("column `{column}`: expected {wanted}, got {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_getters_check_types() {
        let rows = Rows::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![vec![Value::Integer(1), Value::Text("x".into()), Value::Null]],
        );
        let r = rows.first().unwrap();
        assert_eq!(r.int("a").unwrap(), 1);
        assert_eq!(r.text("b").unwrap(), "x");
        assert_eq!(r.opt_text("c").unwrap(), None);
        assert!(r.int("b").is_err());
        assert!(r.text("missing").is_err());
        assert!(r.bool("a").unwrap());
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(Some("a")), Value::Text("a".into()));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(true), Value::Integer(1));
    }
}
