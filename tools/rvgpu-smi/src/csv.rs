// SPDX-License-Identifier: GPL-2.0
//! CSV output (RFC 4180): a field with a comma, a quote or a line break is quoted, its quotes
//! doubled.

/// One field.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One record, with its line break.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// Splits CSV text into records of fields (quoted fields may hold line breaks): the reverse of
/// [`row`], for tests and scripts.
pub fn parse(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut fieldbuf = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                fieldbuf.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => fieldbuf.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut fieldbuf)),
            (false, '\n') => {
                record.push(std::mem::take(&mut fieldbuf));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, c) => fieldbuf.push(c),
        }
    }
    if !fieldbuf.is_empty() || !record.is_empty() {
        record.push(fieldbuf);
        records.push(record);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(row(&["a", "", "b\nc"]), "a,,\"b\nc\"\n");
    }

    #[test]
    fn round_trip() {
        let fields = ["x,y", "q\"q", "", "line\nbreak", "plain"];
        assert_eq!(
            parse(&(row(&fields) + &row(&["1", "2"]))),
            vec![
                fields.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                vec!["1".to_string(), "2".to_string()],
            ]
        );
    }
}
