//! TAP results for the in-VM test programs, numbered through the in-VM runner's counter files
//! (`$TAP_STATE`, see `selftests/lib.sh`), so that results of several programs and scripts form
//! one stream.

use std::fs;
use std::io;
use std::path::PathBuf;

/// The result reporter of one test program.
pub struct Tap {
    state: PathBuf,
    /// Results reported so far by this program.
    pub reported: usize,
}

impl Tap {
    /// The reporter for `$TAP_STATE`, if it is set.
    pub fn from_env() -> Option<Tap> {
        std::env::var_os("TAP_STATE").map(|s| Tap { state: PathBuf::from(s), reported: 0 })
    }

    fn bump(&self, name: &str) -> usize {
        let p = self.state.join(name);
        let n = fs::read_to_string(&p).ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(0) + 1;
        let _ = fs::write(&p, format!("{n}\n"));
        n
    }

    /// Reports one result: `ok`, or `not ok` with the message as diagnostic lines.
    pub fn result(&mut self, desc: &str, r: Result<(), String>) {
        self.bump("script_count");
        self.reported += 1;
        let n = self.bump("count");
        match r {
            Ok(()) => println!("ok {n} - {desc}"),
            Err(why) => {
                println!("not ok {n} - {desc}");
                for line in why.lines() {
                    println!("#   {line}");
                }
                let _ = fs::write(self.state.join("failed"), "1\n");
            }
        }
    }

    /// Reports the results a program planned but never reached as failures.
    pub fn fill_to(&mut self, planned: usize, desc: &str) {
        while self.reported < planned {
            self.result(desc, Err("an earlier step failed".into()));
        }
    }
}

/// An error as a result message.
pub fn es(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Both results; both messages when both failed.
pub fn both(a: Result<(), String>, b: Result<(), String>) -> Result<(), String> {
    match (a, b) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(e), Err(f)) => Err(format!("{e}\n{f}")),
    }
}

/// Runs every check of a list and joins the failures, so one result reports all that is wrong.
pub fn all(checks: Vec<(String, Result<(), String>)>) -> Result<(), String> {
    let bad: Vec<String> = checks.into_iter().filter_map(|(n, r)| r.err().map(|e| format!("{n}: {e}"))).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// `Err(message)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// The errno of a failed result.
pub fn errno_of<T>(r: io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// `Ok` if `r` failed with one of `want`.
pub fn expect_errno_in<T>(what: &str, r: io::Result<T>, want: &[i32]) -> Result<(), String> {
    match errno_of(r) {
        Some(e) if want.contains(&e) => Ok(()),
        None => Err(format!("{what}: expected errno {want:?}, but it succeeded")),
        other => Err(format!("{what}: expected errno {want:?}, got {other:?}")),
    }
}

/// `Ok` if `r` failed with `want`.
pub fn expect_errno<T>(what: &str, r: io::Result<T>, want: i32) -> Result<(), String> {
    expect_errno_in(what, r, &[want])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_failures() {
        assert_eq!(both(Ok(()), Ok(())), Ok(()));
        assert_eq!(both(Err("a".into()), Ok(())), Err("a".into()));
        assert_eq!(both(Ok(()), Err("b".into())), Err("b".into()));
        assert_eq!(both(Err("a".into()), Err("b".into())), Err("a\nb".into()));
        assert_eq!(all(vec![("x".into(), Ok(())), ("y".into(), Ok(()))]), Ok(()));
        let r = all(vec![("x".into(), Err("bad".into())), ("y".into(), Ok(())), ("z".into(), Err("worse".into()))]);
        assert_eq!(r, Err("x: bad\nz: worse".into()));
    }
}
