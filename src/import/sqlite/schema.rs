//! Reading a `CREATE TABLE` statement from `sqlite_schema` well enough to list the table's
//! columns in order, find the rowid alias (`INTEGER PRIMARY KEY`) and the columns a record does
//! not store (virtual generated columns). It does not validate SQL: SQLite accepted it already.

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name as declared (unquoted).
    pub name: String,
    /// The declared type, upper-case words separated by one space ("" when none).
    pub decl_type: String,
    /// Whether the column is the rowid alias: its record value is NULL and the rowid stands in.
    pub rowid_alias: bool,
    /// Whether records hold a value for it (false for `GENERATED ... VIRTUAL` columns).
    pub stored: bool,
    /// Its `DEFAULT`, as SQL text (`'x'`, `-5`, `X'00'`, `NULL`, `(1 + 1)`), which records
    /// written before ALTER TABLE added the column read as.
    pub default: Option<String>,
}

/// How SQLite converts the values of a column (datatype3.html, "Determination Of Column
/// Affinity").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    /// `INT` in the type.
    Integer,
    /// `CHAR`, `CLOB` or `TEXT`.
    Text,
    /// `BLOB`, or no type.
    Blob,
    /// `REAL`, `FLOA` or `DOUB`.
    Real,
    /// Anything else.
    Numeric,
}

impl Column {
    /// The column's affinity, from its declared type, by SQLite's rules in their order.
    pub fn affinity(&self) -> Affinity {
        let t = self.decl_type.as_str();
        if t.contains("INT") {
            Affinity::Integer
        } else if ["CHAR", "CLOB", "TEXT"].iter().any(|w| t.contains(w)) {
            Affinity::Text
        } else if t.is_empty() || t.contains("BLOB") {
            Affinity::Blob
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|w| t.contains(w)) {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

/// What the reader needs of a table definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The columns, in declaration order.
    pub columns: Vec<Column>,
    /// `WITHOUT ROWID` tables are index b-trees, which the reader does not scan.
    pub without_rowid: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: a keyword or an identifier.
    Word(String),
    /// `"x"`, `[x]` or `` `x` ``: always an identifier.
    Quoted(String),
    /// `'x'`: a string, which SQLite also takes as a name where a name is expected.
    Str(String),
    /// `(`, `)`, `,`, `.` and any other single character.
    Punct(char),
}

impl Tok {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn name(&self) -> Option<&str> {
        match self {
            Tok::Word(s) | Tok::Quoted(s) | Tok::Str(s) => Some(s),
            Tok::Punct(_) => None,
        }
    }
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // A quoted run ending at `close`, where a doubled `close` stands for itself.
    let quoted = |i: &mut usize, close: char, doubled: bool| -> Result<String, String> {
        let mut s = String::new();
        *i += 1;
        loop {
            match chars.get(*i) {
                None => return Err("an unterminated quoted name or string".into()),
                Some(&c) if c == close => {
                    if doubled && chars.get(*i + 1) == Some(&close) {
                        s.push(close);
                        *i += 2;
                    } else {
                        *i += 1;
                        return Ok(s);
                    }
                }
                Some(&c) => {
                    s.push(c);
                    *i += 1;
                }
            }
        }
    };
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '"' => out.push(Tok::Quoted(quoted(&mut i, '"', true)?)),
            '`' => out.push(Tok::Quoted(quoted(&mut i, '`', true)?)),
            '[' => out.push(Tok::Quoted(quoted(&mut i, ']', false)?)),
            '\'' => out.push(Tok::Str(quoted(&mut i, '\'', true)?)),
            c if c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii() => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|&c| c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii())
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            c => {
                out.push(Tok::Punct(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Words that end a column's type and start its constraints.
const CONSTRAINT_WORDS: &[&str] = &[
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];

/// Words that start a table constraint instead of a column.
const TABLE_CONSTRAINT_WORDS: &[&str] = &["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"];

/// Parses `CREATE TABLE name (columns and constraints) [options]`.
pub fn parse_create_table(sql: &str) -> Result<TableDef, String> {
    let toks = tokenize(sql)?;
    let list = skip_table_name(&toks)?;
    let (items, options) = split_column_list(&toks, list)?;
    let without_rowid = toks[options..]
        .windows(2)
        .any(|w| w[0].is_kw("WITHOUT") && w[1].is_kw("ROWID"));
    let mut columns = Vec::new();
    let mut column_pk: Vec<(usize, bool)> = Vec::new(); // (column, declared DESC)
    let mut table_pk: Vec<String> = Vec::new();
    for item in items {
        let Some(first) = item.first() else {
            return Err("an empty column definition".into());
        };
        if TABLE_CONSTRAINT_WORDS.iter().any(|w| first.is_kw(w)) {
            if let Some(p) = top_level_position(item, |t| t.is_kw("PRIMARY")) {
                table_pk = parenthesised_names(&item[p..]);
            }
            continue;
        }
        let (column, primary_key) = parse_column(item)?;
        if let Some(desc) = primary_key {
            column_pk.push((columns.len(), desc));
        }
        columns.push(column);
    }
    if columns.is_empty() {
        return Err("no columns".into());
    }
    if !without_rowid {
        mark_rowid_alias(&mut columns, &column_pk, &table_pk);
    }
    Ok(TableDef {
        columns,
        without_rowid,
    })
}

/// Reads `CREATE [TEMP] TABLE [IF NOT EXISTS] [schema.]name (`; the position after the `(`.
fn skip_table_name(toks: &[Tok]) -> Result<usize, String> {
    let mut i = 0;
    let expect = |i: &mut usize, kw: &str| -> Result<(), String> {
        if toks.get(*i).is_some_and(|t| t.is_kw(kw)) {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected {kw}"))
        }
    };
    expect(&mut i, "CREATE")?;
    if toks
        .get(i)
        .is_some_and(|t| t.is_kw("TEMP") || t.is_kw("TEMPORARY"))
    {
        i += 1;
    }
    expect(&mut i, "TABLE")?;
    if toks.get(i).is_some_and(|t| t.is_kw("IF")) {
        i += 1;
        expect(&mut i, "NOT")?;
        expect(&mut i, "EXISTS")?;
    }
    // [schema.]name
    toks.get(i)
        .and_then(Tok::name)
        .ok_or("expected the table name")?;
    i += 1;
    if toks.get(i) == Some(&Tok::Punct('.')) {
        i += 2;
    }
    if toks.get(i) != Some(&Tok::Punct('(')) {
        return Err("expected '(' and the column list".into());
    }
    Ok(i + 1)
}

/// Splits the column list that starts at `start` at its top-level commas: the items (column
/// definitions and table constraints) and the position after the list's closing `)`.
fn split_column_list(toks: &[Tok], start: usize) -> Result<(Vec<&[Tok]>, usize), String> {
    let mut items: Vec<&[Tok]> = Vec::new();
    let mut depth = 0usize;
    let mut item_start = start;
    let mut i = start;
    loop {
        match toks.get(i) {
            None => return Err("the column list is not closed".into()),
            Some(Tok::Punct('(')) => depth += 1,
            Some(Tok::Punct(')')) if depth == 0 => {
                items.push(&toks[item_start..i]);
                return Ok((items, i + 1));
            }
            Some(Tok::Punct(')')) => depth -= 1,
            Some(Tok::Punct(',')) if depth == 0 => {
                items.push(&toks[item_start..i]);
                item_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Reads one column definition (`name [type] [constraints]`): the column (not yet a rowid
/// alias), and whether it is declared `PRIMARY KEY` (`Some(true)` with `DESC`).
fn parse_column(item: &[Tok]) -> Result<(Column, Option<bool>), String> {
    let name = item
        .first()
        .and_then(Tok::name)
        .ok_or("a column without a name")?
        .to_string();
    let (decl_type, rest) = column_type(&item[1..]);
    let primary_key = top_level_position(rest, |t| t.is_kw("PRIMARY"))
        .map(|p| rest.get(p + 2).is_some_and(|t| t.is_kw("DESC")));
    let default =
        top_level_position(rest, |t| t.is_kw("DEFAULT")).map(|p| default_sql(&rest[p + 1..]));
    let generated = top_level_position(rest, |t| t.is_kw("AS")).is_some();
    let stored = !generated || top_level_position(rest, |t| t.is_kw("STORED")).is_some();
    let column = Column {
        name,
        decl_type,
        rowid_alias: false,
        stored,
        default,
    };
    Ok((column, primary_key))
}

/// The declared type at the start of `toks` (upper-case words separated by one space, sizes
/// such as `(255)` left out), and the constraints that follow it.
fn column_type(toks: &[Tok]) -> (String, &[Tok]) {
    let mut type_words = Vec::new();
    let mut j = 0;
    while let Some(t) = toks.get(j) {
        match t {
            Tok::Word(w) if !CONSTRAINT_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                type_words.push(w.to_ascii_uppercase());
            }
            Tok::Quoted(w) => type_words.push(w.to_ascii_uppercase()),
            Tok::Punct('(') => {
                // VARCHAR(255), DECIMAL(10, 2): skip the size.
                let mut d = 0;
                while let Some(t) = toks.get(j) {
                    match t {
                        Tok::Punct('(') => d += 1,
                        Tok::Punct(')') => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => break,
        }
        j += 1;
    }
    (type_words.join(" "), &toks[j.min(toks.len())..])
}

/// Marks the rowid alias of a rowid table: its one `INTEGER` primary key column, declared on
/// the column (not `DESC`) or as the table's primary key.
fn mark_rowid_alias(columns: &mut [Column], column_pk: &[(usize, bool)], table_pk: &[String]) {
    let alias = match (column_pk, table_pk) {
        ([(c, false)], []) => Some(*c),
        ([], [name]) => columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name)),
        _ => None,
    };
    if let Some(c) = alias.filter(|&c| columns[c].decl_type == "INTEGER") {
        columns[c].rowid_alias = true;
    }
}

/// The SQL text of the default value at the start of `toks`: a parenthesised expression, or a
/// literal, with its sign and a number's pieces (`3`, `.`, `5e`, `-`, `3`) put back together.
fn default_sql(toks: &[Tok]) -> String {
    fn push(out: &mut String, t: &Tok) {
        match t {
            Tok::Punct(c) => out.push(*c),
            Tok::Word(w) => out.push_str(w),
            Tok::Str(s) => out.push_str(&format!("'{}'", s.replace('\'', "''"))),
            Tok::Quoted(s) => out.push_str(&format!("\"{}\"", s.replace('"', "\"\""))),
        }
    }
    let mut out = String::new();
    if toks.first() == Some(&Tok::Punct('(')) {
        let mut depth = 0usize;
        for t in toks {
            push(&mut out, t);
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        return out;
    }
    let mut i = 0;
    while let Some(Tok::Punct(c @ ('+' | '-'))) = toks.get(i) {
        out.push(*c);
        i += 1;
    }
    let number_start = match toks.get(i) {
        Some(Tok::Word(w)) => w.starts_with(|c: char| c.is_ascii_digit()),
        Some(Tok::Punct('.')) => true,
        _ => false,
    };
    if number_start {
        let mut prev: Option<&Tok> = None;
        while let Some(t) = toks.get(i) {
            let fits = match (prev, t) {
                (None, _) => true,
                (Some(Tok::Word(_)), Tok::Punct('.')) => !out.contains('.'),
                (Some(Tok::Punct('.')), Tok::Word(_)) => true,
                (Some(Tok::Word(w)), Tok::Punct('+' | '-')) => w.ends_with(['e', 'E']),
                (Some(Tok::Punct('+' | '-')), Tok::Word(_)) => true,
                _ => false,
            };
            if !fits {
                break;
            }
            push(&mut out, t);
            prev = Some(t);
            i += 1;
        }
    } else if let Some(t) = toks.get(i) {
        push(&mut out, t);
        // X'00ff': a blob.
        if t.is_kw("X")
            && let Some(hex @ Tok::Str(_)) = toks.get(i + 1)
        {
            push(&mut out, hex);
        }
    }
    out
}

/// The position of the first token outside parentheses that matches.
fn top_level_position(toks: &[Tok], f: impl Fn(&Tok) -> bool) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            t if depth == 0 && f(t) => return Some(i),
            _ => {}
        }
    }
    None
}

/// The names in the first parenthesised list: `PRIMARY KEY (a COLLATE x ASC, b)` -> [a, b].
fn parenthesised_names(toks: &[Tok]) -> Vec<String> {
    let Some(open) = toks.iter().position(|t| *t == Tok::Punct('(')) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut expect_name = true;
    let mut depth = 0usize;
    for t in &toks[open + 1..] {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') if depth == 0 => break,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => expect_name = true,
            t if expect_name && depth == 0 => {
                if let Some(n) = t.name() {
                    names.push(n.to_string());
                }
                expect_name = false;
            }
            _ => {}
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(def: &TableDef) -> Vec<&str> {
        def.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn columns_come_out_in_order_with_quoting_removed() {
        let def = parse_create_table(
            "CREATE TABLE IF NOT EXISTS main.\"t\" ( -- comment (\n \"id\" INTEGER PRIMARY KEY, \
             [na me] varchar(256) not null, `x``y` BLOB, 'r' REAL /* ) */, plain, \
             CONSTRAINT c CHECK (plain > 0), UNIQUE (plain, r))",
        )
        .unwrap();
        assert_eq!(names(&def), ["id", "na me", "x`y", "r", "plain"]);
        assert!(def.columns[0].rowid_alias);
        assert_eq!(def.columns[1].decl_type, "VARCHAR");
        assert_eq!(def.columns[4].decl_type, "");
        assert!(!def.without_rowid);
    }

    #[test]
    fn only_an_integer_primary_key_is_the_rowid() {
        let alias = |sql: &str| -> Vec<bool> {
            parse_create_table(sql)
                .unwrap()
                .columns
                .iter()
                .map(|c| c.rowid_alias)
                .collect()
        };
        assert_eq!(
            alias("CREATE TABLE t (a INT PRIMARY KEY, b)"),
            [false, false]
        );
        assert_eq!(
            alias("CREATE TABLE t (a integer primary key autoincrement, b)"),
            [true, false]
        );
        assert_eq!(
            alias("CREATE TABLE t (a INTEGER PRIMARY KEY DESC, b)"),
            [false, false]
        );
        assert_eq!(
            alias("CREATE TABLE t (a INTEGER, b, PRIMARY KEY (a DESC))"),
            [true, false]
        );
        assert_eq!(
            alias("CREATE TABLE t (a INTEGER, b, PRIMARY KEY (a, b))"),
            [false, false]
        );
        assert_eq!(
            alias("CREATE TABLE t (a INTEGER PRIMARY KEY, b) WITHOUT ROWID"),
            [false, false]
        );
        assert!(
            parse_create_table("CREATE TABLE t (a TEXT PRIMARY KEY) WITHOUT ROWID")
                .unwrap()
                .without_rowid
        );
    }

    #[test]
    fn virtual_generated_columns_are_not_stored() {
        let def = parse_create_table(
            "CREATE TABLE t (a, b AS (a * 2), c GENERATED ALWAYS AS (a) STORED, d INT)",
        )
        .unwrap();
        let stored: Vec<bool> = def.columns.iter().map(|c| c.stored).collect();
        assert_eq!(stored, [true, false, true, true]);
    }

    #[test]
    fn broken_statements_are_errors() {
        for sql in [
            "",
            "CREATE INDEX i ON t(a)",
            "CREATE TABLE t",
            "CREATE TABLE t (a, b",
            "CREATE TABLE t ()",
            "CREATE TABLE t (\"a)",
            "CREATE TABLE t AS SELECT 1",
        ] {
            assert!(parse_create_table(sql).is_err(), "{sql}");
        }
    }
}
