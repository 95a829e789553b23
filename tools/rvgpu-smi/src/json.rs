// SPDX-License-Identifier: GPL-2.0
//! A small JSON value: written compactly with escaped strings, and parsed strictly (RFC 8259),
//! which the tests use to check the output.

use std::fmt::Write as _;

/// A JSON value. Objects keep their members in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number, kept as its text so that 64-bit integers stay exact.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An unsigned integer.
    pub fn uint(v: u64) -> Json {
        Json::Num(v.to_string())
    }

    /// An unsigned integer or `null`.
    pub fn opt_uint(v: Option<u64>) -> Json {
        v.map_or(Json::Null, Json::uint)
    }

    /// A percentage with one decimal, or `null`.
    pub fn percent(v: Option<f64>) -> Json {
        match v {
            Some(p) if p.is_finite() => Json::Num(format!("{p:.1}")),
            _ => Json::Null,
        }
    }

    /// A string.
    pub fn str(s: &str) -> Json {
        Json::Str(s.to_string())
    }

    /// A string or `null`.
    pub fn opt_str(s: Option<&str>) -> Json {
        s.map_or(Json::Null, Json::str)
    }

    /// An object from `(name, value)` pairs.
    pub fn obj(members: Vec<(&str, Json)>) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// An object's member.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number's text.
    pub fn as_num(&self) -> Option<&str> {
        match self {
            Json::Num(s) => Some(s),
            _ => None,
        }
    }

    /// An array's items.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// The compact JSON text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    /// The compact JSON text and a line break: a whole output (or one line of it).
    pub fn to_line(&self) -> String {
        self.to_text() + "\n"
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => escape_into(s, out),
            Json::Arr(items) => write_list(out, ['[', ']'], items, |v, out| v.write_to(out)),
            Json::Obj(members) => write_list(out, ['{', '}'], members, |(k, v), out| {
                escape_into(k, out);
                out.push(':');
                v.write_to(out);
            }),
        }
    }
}

/// Writes `items` with `write`, separated by commas, between the `brackets`.
fn write_list<T>(
    out: &mut String,
    brackets: [char; 2],
    items: &[T],
    mut write: impl FnMut(&T, &mut String),
) {
    out.push(brackets[0]);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(item, out);
    }
    out.push(brackets[1]);
}

/// Appends `s` as a JSON string literal.
pub fn escape_into(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one JSON text (surrounding whitespace allowed, nothing else).
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return p.err("trailing characters");
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            None => self.err("unexpected end"),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected character"),
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        self.i += 1;
        if self.depth > 128 {
            return self.err("nested too deeply");
        }
        self.ws();
        Ok(())
    }

    /// Parses an array's or object's items, each with `item`, from its opening bracket to
    /// `close`.
    fn list(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.enter()?;
        if !self.eat(close) {
            loop {
                self.ws();
                item(self)?;
                self.ws();
                if self.eat(close) {
                    break;
                }
                if !self.eat(b',') {
                    return self.err(&format!("expected ',' or '{}'", close as char));
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Json, String> {
        let mut items = Vec::new();
        self.list(b']', |p| {
            items.push(p.value()?);
            Ok(())
        })?;
        Ok(Json::Arr(items))
    }

    fn object(&mut self) -> Result<Json, String> {
        let mut members = Vec::new();
        self.list(b'}', |p| {
            if p.peek() != Some(b'"') {
                return p.err("expected a member name");
            }
            let key = p.string()?;
            p.ws();
            if !p.eat(b':') {
                return p.err("expected ':'");
            }
            p.ws();
            members.push((key, p.value()?));
            Ok(())
        })?;
        Ok(Json::Obj(members))
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return self.err("bad number");
        }
        if self.eat(b'.') && self.digits() == 0 {
            return self.err("bad fraction");
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        Ok(Json::Num(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return self.err("short \\u escape");
        };
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return self.err("bad \\u escape");
        }
        self.i += 4;
        let h = std::str::from_utf8(h).map_err(|e| e.to_string())?;
        u32::from_str_radix(h, 16).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.i += 1;
            }
            // The run ends at an ASCII byte (or the end), so it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let e = self.peek();
                    self.i += 1;
                    let c = match e {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let cp = if (0xd800..0xdc00).contains(&hi) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return self.err("lone surrogate");
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return self.err("bad surrogate pair");
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(c) => c,
                                None => return self.err("lone surrogate"),
                            }
                        }
                        _ => return self.err("bad escape"),
                    };
                    out.push(c);
                }
                Some(_) => return self.err("control character in a string"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h/ü😀";
        let v = Json::obj(vec![
            ("s", Json::str(nasty)),
            ("n", Json::uint(u64::MAX)),
            ("p", Json::percent(Some(12.345))),
            ("z", Json::Null),
            ("a", Json::Arr(vec![Json::Bool(true), Json::Bool(false)])),
        ]);
        let text = v.to_text();
        assert!(!text.contains('\n'));
        assert_eq!(
            text,
            "{\"s\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh/ü😀\",\"n\":18446744073709551615,\
             \"p\":12.3,\"z\":null,\"a\":[true,false]}"
        );
        assert_eq!(parse(&text), Ok(v));
    }

    #[test]
    fn parser_accepts_valid_json() {
        let v = parse(" {\"a\" : [1, -2.5e+3, 0, {}, []], \"b\": \"\\u00e9\\ud83d\\ude00\\/\"} ")
            .unwrap();
        assert_eq!(v.get("a").unwrap().as_array().unwrap().len(), 5);
        assert_eq!(v.get("b").unwrap().as_str(), Some("é😀/"));
    }

    #[test]
    fn parser_rejects_invalid_json() {
        for bad in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"a\nb\"",
            "\"\\ud800\"",
            "nul",
            "[1] [2]",
            "{\"a\" 1}",
            "'a'",
            "NaN",
            "+1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
