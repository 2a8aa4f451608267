//! The `CREATE TABLE` reader of the importer (`oxisd::import::sqlite::parse_create_table`):
//! any statement is read or refused without a panic; what it reads has columns,
//! and at most one rowid alias, of declared type INTEGER, in a table that has a rowid; declared
//! types are upper-case.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::import::sqlite::parse_create_table;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let Ok(def) = parse_create_table(&sql) else {
        return;
    };
    assert!(!def.columns.is_empty());
    let aliases: Vec<_> = def.columns.iter().filter(|c| c.rowid_alias).collect();
    assert!(aliases.len() <= 1, "{sql}: several rowid aliases");
    for alias in aliases {
        assert_eq!(alias.decl_type, "INTEGER", "{sql}");
        assert!(!def.without_rowid, "{sql}");
    }
    for column in &def.columns {
        assert!(
            !column.decl_type.bytes().any(|b| b.is_ascii_lowercase()),
            "{sql}"
        );
    }
    assert_eq!(parse_create_table(&sql), Ok(def), "not deterministic");
});
