//! Reading a dataset's file list: one logical file name a line, optionally its size.

use std::collections::HashMap;

use repro_db::NewFile;

/// The longest logical file name the database stores.
pub const MAX_LFN: usize = 512;

/// A malformed file list: where, and what is wrong. Nothing of the list is registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileListError(pub String);

/// Parses a file list. Blank lines and `#` comments are skipped; any other line is
/// `LFN [SIZE]`. The first malformed line is an error naming its number, and nothing is
/// returned.
pub fn parse(text: &str, source: &str) -> Result<Vec<NewFile>, FileListError> {
    parse_lines(text, source).map_err(FileListError)
}

fn parse_lines(text: &str, source: &str) -> Result<Vec<NewFile>, String> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut cols = line.split_whitespace();
        let lfn = cols.next().unwrap_or_default();
        let size = match cols.next() {
            None => 0,
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|v| i64::try_from(*v).is_ok())
                .ok_or_else(|| format!("{source}:{n}: size {s:?} is not a number of bytes"))?,
        };
        if let Some(extra) = cols.next() {
            return Err(format!(
                "{source}:{n}: expected `LFN [SIZE]`, found a third column {extra:?}"
            ));
        }
        if lfn.len() > MAX_LFN {
            return Err(format!(
                "{source}:{n}: file name is {} bytes long; at most {MAX_LFN} are allowed",
                lfn.len()
            ));
        }
        if lfn.chars().any(char::is_control) {
            return Err(format!(
                "{source}:{n}: file name contains a control character"
            ));
        }
        if let Some(first) = seen.insert(lfn.to_owned(), n) {
            return Err(format!(
                "{source}:{n}: file {lfn:?} is listed twice (first on line {first})"
            ));
        }
        out.push(NewFile {
            lfn: lfn.to_owned(),
            size,
        });
    }
    if out.is_empty() {
        return Err(format!("{source}: no file names in the list"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_comments_and_blank_lines() {
        let f = parse(
            "# run 1\n\n/a/raw1.dat 1000\n/a/raw2.dat   # no size\n",
            "list",
        )
        .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].lfn.as_str(), f[0].size), ("/a/raw1.dat", 1000));
        assert_eq!((f[1].lfn.as_str(), f[1].size), ("/a/raw2.dat", 0));
    }

    #[test]
    fn a_malformed_line_is_named_by_number() {
        assert_eq!(
            parse("a 1\nb lots\n", "list").unwrap_err().0,
            "list:2: size \"lots\" is not a number of bytes"
        );
        assert_eq!(
            parse("a 1 2\n", "list").unwrap_err().0,
            "list:1: expected `LFN [SIZE]`, found a third column \"2\""
        );
        assert_eq!(
            parse("a\n\na\n", "list").unwrap_err().0,
            "list:3: file \"a\" is listed twice (first on line 1)"
        );
        assert_eq!(
            parse("# nothing\n", "-").unwrap_err().0,
            "-: no file names in the list"
        );
        assert!(parse("a -5\n", "l").is_err());
    }
}
