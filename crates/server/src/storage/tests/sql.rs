use super::*;

#[test]
fn a_statement_written_once_reads_in_each_dialect() {
    let sql = "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2 #lock";
    assert_eq!(
        Dialect::Sqlite.sql(sql),
        "SELECT body FROM card_templates WHERE brand_id = ?1 AND card_id = ?2"
    );
    assert_eq!(
        Dialect::Postgres.sql(sql),
        "SELECT body FROM card_templates WHERE brand_id = $1 AND card_id = $2 FOR UPDATE"
    );
    assert_eq!(
        Dialect::Sqlite.sql("SELECT 1 ORDER BY #seq DESC"),
        "SELECT 1 ORDER BY rowid DESC"
    );
    assert_eq!(
        Dialect::Postgres.sql("SELECT 1 ORDER BY #seq DESC"),
        "SELECT 1 ORDER BY seq DESC"
    );
}

#[test]
fn a_boolean_reads_from_an_integer_and_null_reads_as_none() {
    let row = Row(vec![Value::Int(1), Value::Null, Value::Bool(false)]);
    assert!(row.bool(0).unwrap());
    assert!(!row.bool(2).unwrap());
    assert_eq!(row.opt_text(1).unwrap(), None);
    assert!(row.text(0).is_err(), "an integer is not text");
}
