//! Rules for the relative paths an artifact may name.

use crate::error::FormatError;
use crate::limits::MAX_PATH_LEN;

/// Checks that `path` is a plain relative path: `/`-separated, no empty,
/// `.` or `..` component, no backslash, NUL or drive letter, so that joining
/// it to an output directory can never leave that directory.
pub fn check_relative_path(path: &str) -> Result<(), FormatError> {
    let bad = |why| {
        Err(FormatError::UnsafePath {
            path: path.to_string(),
            why,
        })
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("it is longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("it is absolute");
    }
    if path.contains('\\') {
        return bad("it contains a backslash");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if path.contains(':') {
        return bad("it contains ':' (a drive letter or stream name)");
    }
    for comp in path.split('/') {
        match comp {
            "" => return bad("it has an empty component"),
            "." => return bad("it has a '.' component"),
            ".." => return bad("it has a '..' component that would escape the output directory"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a whole list: each path valid, none repeated, and none both a file
/// and a parent directory of another (which would make extraction ambiguous).
pub fn check_path_set<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), FormatError> {
    let mut files = std::collections::BTreeSet::new();
    let mut dirs = std::collections::BTreeSet::new();
    for p in paths {
        check_relative_path(p)?;
        if !files.insert(p) || dirs.contains(p) {
            return Err(FormatError::DuplicatePath {
                path: p.to_string(),
            });
        }
        let mut end = 0;
        while let Some(i) = p[end..].find('/') {
            let dir = &p[..end + i];
            if files.contains(dir) {
                return Err(FormatError::DuplicatePath {
                    path: dir.to_string(),
                });
            }
            dirs.insert(dir);
            end += i + 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in [
            "model.safetensors",
            "1_Pooling/config.json",
            "a/b/c.txt",
            "..hidden",
            "a..b",
        ] {
            check_relative_path(p).unwrap();
        }
    }

    #[test]
    fn rejects_escapes() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "C:x",
            "a\0b",
        ] {
            assert!(
                matches!(check_relative_path(p), Err(FormatError::UnsafePath { .. })),
                "{p:?} accepted"
            );
        }
    }

    #[test]
    fn rejects_duplicates_and_file_dir_clashes() {
        assert!(check_path_set(["a", "b/c"]).is_ok());
        assert!(matches!(
            check_path_set(["a", "a"]),
            Err(FormatError::DuplicatePath { .. })
        ));
        assert!(matches!(
            check_path_set(["a", "a/b"]),
            Err(FormatError::DuplicatePath { .. })
        ));
        assert!(matches!(
            check_path_set(["a/b", "a"]),
            Err(FormatError::DuplicatePath { .. })
        ));
    }
}
