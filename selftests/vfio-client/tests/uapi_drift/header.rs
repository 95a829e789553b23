// SPDX-License-Identifier: GPL-2.0
//! A parser of what `uapi/rvgpu.h` uses of C, with no C compiler: `#define NAME value` (with
//! constant expressions), and structs laid out by C's rules for Linux (`__u8`..`__u64` fields,
//! arrays, nested and anonymous structs and unions).

use std::collections::HashMap;

/// The text without comments; newlines inside comments are kept, so lines stay lines.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            let end = r.find("*/").map_or(r.len(), |i| i + 2);
            out.push(' ');
            out.extend(r[..end].chars().filter(|&c| c == '\n'));
            rest = &r[end.min(r.len())..];
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = &r[r.find('\n').unwrap_or(r.len())..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Logical lines: comments removed, backslash continuations joined.
fn logical_lines(s: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in strip_comments(s).lines() {
        if let Some(l) = l.strip_suffix('\\') {
            cur.push_str(l);
            cur.push(' ');
        } else {
            cur.push_str(l);
            lines.push(std::mem::take(&mut cur));
        }
    }
    lines.push(cur);
    lines
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(u64),
    Punct(&'static str),
    /// Anything else: a character, or `"` for a whole string literal. Only struct parsing, which
    /// skips the code between structs, accepts these.
    Other(char),
}

const PUNCT: [&str; 18] = ["<<", ">>", "(", ")", "{", "}", "[", "]", ";", ",", "|", "&", "^", "+", "-", "*", "/", "~"];

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let n = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            out.push(Tok::Ident(s[i..i + n].to_string()));
            i += n;
        } else if c.is_ascii_digit() {
            let n = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
            let lit = s[i..i + n].trim_end_matches(|c: char| "uUlL".contains(c));
            let v = match lit.strip_prefix("0x").or_else(|| lit.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None if lit.len() > 1 && lit.starts_with('0') => u64::from_str_radix(&lit[1..], 8),
                None => lit.parse(),
            };
            out.push(Tok::Num(v.map_err(|e| format!("number {:?}: {e}", &s[i..i + n]))?));
            i += n;
        } else if let Some(p) = PUNCT.iter().find(|p| s[i..].starts_with(**p)) {
            out.push(Tok::Punct(p));
            i += p.len();
        } else if c == b'"' || c == b'\'' {
            // A string or character literal, as one token.
            let n = b[i + 1..].iter().position(|&x| x == c).map_or(b.len() - i, |n| n + 2);
            out.push(Tok::Other(c as char));
            i += n;
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            out.push(Tok::Other(ch));
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

/// Evaluates a constant expression of C: literals, other defines, unary `~ - +`, binary
/// `* / + - << >> & ^ |` with C's precedence, parentheses.
struct Eval<'a> {
    t: &'a [Tok],
    at: usize,
    defs: &'a HashMap<String, u64>,
}

impl Eval<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.at)
    }

    fn binary(&mut self, level: usize) -> Result<u64, String> {
        const LEVELS: [&[&str]; 6] = [&["|"], &["^"], &["&"], &["<<", ">>"], &["+", "-"], &["*", "/"]];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut v = self.binary(level + 1)?;
        while let Some(Tok::Punct(op)) = self.peek().cloned() {
            if !LEVELS[level].contains(&op) {
                break;
            }
            self.at += 1;
            let r = self.binary(level + 1)?;
            v = match op {
                "|" => v | r,
                "^" => v ^ r,
                "&" => v & r,
                "<<" => v.checked_shl(r as u32).ok_or("shift too far")?,
                ">>" => v.checked_shr(r as u32).ok_or("shift too far")?,
                "+" => v.wrapping_add(r),
                "-" => v.wrapping_sub(r),
                "*" => v.wrapping_mul(r),
                _ => v.checked_div(r).ok_or("division by zero")?,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<u64, String> {
        let t = self.peek().cloned().ok_or("expression ends early")?;
        self.at += 1;
        match t {
            Tok::Num(n) => Ok(n),
            Tok::Ident(id) => self.defs.get(&id).copied().ok_or_else(|| format!("{id} is not a known constant")),
            Tok::Punct("~") => Ok(!self.unary()?),
            Tok::Punct("-") => Ok(self.unary()?.wrapping_neg()),
            Tok::Punct("+") => self.unary(),
            Tok::Punct("(") => {
                let v = self.binary(0)?;
                match self.peek() {
                    Some(Tok::Punct(")")) => {
                        self.at += 1;
                        Ok(v)
                    }
                    other => Err(format!("expected ')', found {other:?}")),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn eval(expr: &str, defs: &HashMap<String, u64>) -> Result<u64, String> {
    let t = tokens(expr)?;
    let mut e = Eval { t: &t, at: 0, defs };
    let v = e.binary(0)?;
    match e.peek() {
        None => Ok(v),
        Some(x) => Err(format!("unexpected {x:?} after the value")),
    }
}

/// The header's `#define RVGPU_*` in order, each with its value or why it has none.
pub fn defines(text: &str) -> Vec<(String, Result<u64, String>)> {
    let mut known = HashMap::new();
    let mut out = Vec::new();
    for line in logical_lines(text) {
        let Some(rest) = line.trim_start().strip_prefix('#').map(str::trim_start) else { continue };
        let Some(rest) = rest.strip_prefix("define") else { continue };
        let rest = rest.trim_start();
        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let (name, value) = rest.split_at(n);
        if name == "_UAPI_RVGPU_H" || !name.starts_with("RVGPU_") {
            continue;
        }
        let v =
            if value.starts_with('(') { Err("a function-like macro".to_string()) } else { eval(value.trim(), &known) };
        if let Ok(v) = v {
            known.insert(name.to_string(), v);
        }
        out.push((name.to_string(), v));
    }
    out
}

/// A field of a C struct as laid out: offset from the start of the outermost struct it was
/// parsed into, size, and the struct type it has, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub of_struct: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub size: usize,
    pub align: usize,
    pub fields: Vec<Field>,
}

/// Parses struct and union bodies and lays them out as a C compiler for Linux does.
struct StructParser<'a> {
    t: &'a [Tok],
    at: usize,
    defs: &'a HashMap<String, u64>,
    structs: HashMap<String, Layout>,
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

impl StructParser<'_> {
    fn next(&mut self) -> Result<Tok, String> {
        let t = self.t.get(self.at).cloned().ok_or("the header ends inside a struct")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        match self.next()? {
            Tok::Punct(q) if q == p => Ok(()),
            other => Err(format!("expected {p:?}, found {other:?}")),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    /// The body after `{`, up to and including `}`.
    fn body(&mut self, union: bool) -> Result<Layout, String> {
        let (mut end, mut align, mut fields) = (0usize, 1usize, Vec::new());
        loop {
            let (ty, of_struct) = match self.next()? {
                Tok::Punct("}") => break,
                Tok::Ident(k) if k == "struct" || k == "union" => {
                    if self.t.get(self.at) == Some(&Tok::Punct("{")) {
                        self.at += 1;
                        (self.body(k == "union")?, None)
                    } else {
                        let name = self.ident()?;
                        let l =
                            self.structs.get(&name).cloned().ok_or(format!("{k} {name} is not defined before use"))?;
                        (l, Some(name))
                    }
                }
                Tok::Ident(base) => {
                    let size = match base.as_str() {
                        "__u8" | "__s8" => 1,
                        "__u16" | "__s16" | "__le16" | "__be16" => 2,
                        "__u32" | "__s32" | "__le32" | "__be32" => 4,
                        "__u64" | "__s64" | "__le64" | "__be64" => 8,
                        _ => return Err(format!("unknown field type {base}")),
                    };
                    (Layout { size, align: size, fields: Vec::new() }, None)
                }
                other => return Err(format!("unexpected {other:?} in a struct body")),
            };
            let offset = if union { 0 } else { align_up(end, ty.align) };
            align = align.max(ty.align);
            if self.t.get(self.at) == Some(&Tok::Punct(";")) {
                // An anonymous struct or union: its members are ours.
                self.at += 1;
                fields.extend(ty.fields.iter().map(|f| Field { offset: offset + f.offset, ..f.clone() }));
                end = end.max(offset + ty.size);
                continue;
            }
            let name = self.ident()?;
            let mut size = ty.size;
            if self.t.get(self.at) == Some(&Tok::Punct("[")) {
                self.at += 1;
                let n = match self.next()? {
                    Tok::Num(n) => n,
                    Tok::Ident(d) => *self.defs.get(&d).ok_or(format!("array size {d} is not a known constant"))?,
                    other => return Err(format!("array size {other:?}")),
                };
                self.expect("]")?;
                size *= n as usize;
            }
            self.expect(";")?;
            end = end.max(offset + size);
            fields.push(Field { name, offset, size, of_struct });
        }
        Ok(Layout { size: align_up(end, align), align, fields })
    }

    /// Every `struct NAME { ... };` at the top level of the header.
    fn all(mut self) -> Result<Vec<(String, Layout)>, String> {
        let mut order = Vec::new();
        while self.at < self.t.len() {
            let is_def =
                matches!(&self.t[self.at..], [Tok::Ident(k), Tok::Ident(_), Tok::Punct("{"), ..] if k == "struct");
            if !is_def {
                self.at += 1;
                continue;
            }
            self.at += 1;
            let name = self.ident()?;
            self.expect("{")?;
            let l = self.body(false).map_err(|e| format!("struct {name}: {e}"))?;
            self.expect(";").map_err(|e| format!("after struct {name}: {e}"))?;
            self.structs.insert(name.clone(), l.clone());
            order.push((name, l));
        }
        Ok(order)
    }
}

/// The header's structs in order, laid out.
pub fn structs(text: &str) -> Result<Vec<(String, Layout)>, String> {
    let defs: HashMap<String, u64> = defines(text).into_iter().filter_map(|(n, v)| v.ok().map(|v| (n, v))).collect();
    let code: String =
        logical_lines(text).into_iter().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let t = tokens(&code)?;
    StructParser { t: &t, at: 0, defs: &defs, structs: HashMap::new() }.all()
}

/// Offset and size of `path` (`field.field...`) in a struct of the header.
pub fn resolve(layouts: &HashMap<String, Layout>, st: &str, path: &str) -> Result<(usize, usize), String> {
    let (mut l, mut off, mut size) = (layouts.get(st).ok_or(format!("no struct {st}"))?, 0, 0);
    for part in path.split('.') {
        let f = l.fields.iter().find(|f| f.name == part).ok_or(format!("struct {st} has no {path}"))?;
        off += f.offset;
        size = f.size;
        if let Some(s) = &f.of_struct {
            l = layouts.get(s).ok_or(format!("no struct {s}"))?;
        }
    }
    Ok((off, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_lays_out_as_c_does() {
        let text = r#"
            #ifndef _UAPI_RVGPU_H
            #define _UAPI_RVGPU_H
            #define RVGPU_A   0x10   /* a comment
                                      * over two lines */
            #define RVGPU_B   (1 << 3)  // another
            #define RVGPU_C   (RVGPU_A | RVGPU_B) + 1
            #define RVGPU_D   \
                    017
            #define RVGPU_E(x) ((x) * 2)
            #define OTHER     5
            struct inner { __u8 a; __u64 b; };
            struct outer {
                __u16 x;
                union { struct inner in; __u32 w[RVGPU_B]; };
                struct { __u8 p; __u32 q; };
                __u8 tail[3];
            };
            _Static_assert(sizeof(struct outer) == 56, "outer's size");
        "#;
        let d = defines(text);
        let names: Vec<&str> = d.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["RVGPU_A", "RVGPU_B", "RVGPU_C", "RVGPU_D", "RVGPU_E"]);
        assert_eq!(d[..4].iter().map(|(_, v)| v.clone().unwrap()).collect::<Vec<_>>(), [0x10, 8, 0x19, 0o17]);
        assert!(d[4].1.is_err());
        let s: HashMap<String, Layout> = structs(text).unwrap().into_iter().collect();
        let inner = &s["inner"];
        assert_eq!((inner.size, inner.align), (16, 8));
        let outer = &s["outer"];
        let got: Vec<(&str, usize, usize)> = outer.fields.iter().map(|f| (f.name.as_str(), f.offset, f.size)).collect();
        assert_eq!(got, [("x", 0, 2), ("in", 8, 16), ("w", 8, 32), ("p", 40, 1), ("q", 44, 4), ("tail", 48, 3)]);
        assert_eq!((outer.size, outer.align), (56, 8));
        assert_eq!(resolve(&s, "outer", "in.b"), Ok((16, 8)));
    }
}
