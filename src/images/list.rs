//! Image lists: a text file naming one sample per line, with an optional label, read into an
//! [`ImageFolder`] (ImageNet's `val.txt`, a CSV of annotations, any list a dataset ships).
//!
//! A line is `PATH`, or `PATH` then a separator (tab, comma or space; the last one on the line)
//! then `LABEL`. Labels are all numbers (used as they are) or all class names (numbered in
//! sorted order, as sub-directories are); a list mixing them, or labelling only some lines, is
//! refused with the line that broke the pattern. Relative paths are relative to the list's
//! directory. Blank lines and lines starting with `#` are skipped. Listed files are not checked
//! here: one that is missing fails at `read`, counted and named, like a file that vanishes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{FolderError, ImageFolder};

impl ImageFolder {
    /// The samples a list file names, in its order: one `PATH` or `PATH LABEL` per line (tab,
    /// comma or space before the label; labels all numbers or all class names), paths relative
    /// to the list's directory, blank and `#` lines skipped. A line breaking the pattern is a
    /// [`FolderError::ListLine`] naming it.
    pub fn from_list(list: impl AsRef<Path>) -> Result<Self, FolderError> {
        let list = list.as_ref();
        let text = std::fs::read_to_string(list).map_err(|err| FolderError::List { path: list.to_path_buf(), err })?;
        let base = list.parent().unwrap_or(Path::new("."));
        let (files, classes) = parse(&text, base).map_err(|(line, reason)| FolderError::ListLine {
            path: list.to_path_buf(),
            line,
            reason,
        })?;
        if files.is_empty() {
            return Err(FolderError::EmptyList(list.to_path_buf()));
        }
        let mut folder = Self::from_files(files)?;
        folder.set_origin(list.display().to_string(), classes);
        Ok(folder)
    }
}

/// A line's label, parsed once.
#[derive(Debug, Clone, Copy)]
enum Label<'a> {
    None,
    Number(u32),
    Name(&'a str),
}

impl Label<'_> {
    fn says(self) -> &'static str {
        match self {
            Label::None => "no label",
            Label::Number(_) => "a number label",
            Label::Name(_) => "a class-name label",
        }
    }
}

/// A list's samples and class names, or the line (1-based) that is wrong and why.
type Parsed = (Vec<(PathBuf, Option<u32>)>, Vec<String>);

fn parse(text: &str, base: &Path) -> Result<Parsed, (usize, String)> {
    let mut rows: Vec<(PathBuf, Label)> = Vec::new();
    let mut first: Option<(Label, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, label) = match line.rfind(['\t', ',', ' ']) {
            Some(at) => {
                let l = line[at + 1..].trim_start();
                (line[..at].trim_end(), l.parse().map_or(Label::Name(l), Label::Number))
            }
            None => (line, Label::None),
        };
        if path.is_empty() {
            return Err((i + 1, format!("`{line}` has a label but no path")));
        }
        match first {
            None => first = Some((label, i + 1)),
            Some((f, at)) if std::mem::discriminant(&f) != std::mem::discriminant(&label) => {
                return Err((
                    i + 1,
                    format!(
                        "`{line}` has {}, but line {at} has {}: label every line the same way (a header line? start it with #; a path with spaces or commas needs a label after it)",
                        label.says(),
                        f.says()
                    ),
                ));
            }
            Some(_) => {}
        }
        rows.push((base.join(path), label));
    }
    let names: Vec<String> = {
        let set: BTreeSet<&str> =
            rows.iter().filter_map(|r| if let Label::Name(l) = r.1 { Some(l) } else { None }).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    let files = rows
        .into_iter()
        .map(|(path, label)| {
            let label = match label {
                Label::None => None,
                Label::Number(n) => Some(n),
                Label::Name(l) => {
                    Some(names.binary_search_by(|n| n.as_str().cmp(l)).expect("every name is listed") as u32)
                }
            };
            (path, label)
        })
        .collect();
    Ok((files, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Parsed {
        parse(text, Path::new("/data")).unwrap()
    }

    #[test]
    fn numbers_names_and_no_labels_with_every_separator() {
        let (files, classes) = parsed("# path label\na.jpg 7\nsub/b.jpg\t3\r\n\n/abs/c.jpg,0\n");
        let want = [("/data/a.jpg", 7), ("/data/sub/b.jpg", 3), ("/abs/c.jpg", 0)];
        assert_eq!(files, want.map(|(p, l)| (PathBuf::from(p), Some(l))));
        assert!(classes.is_empty());

        let (files, classes) = parsed("x.png zebra\ny.png ant\nz.png zebra\n");
        assert_eq!(classes, ["ant", "zebra"]);
        assert_eq!(files.iter().map(|f| f.1).collect::<Vec<_>>(), [Some(1), Some(0), Some(1)]);

        let (files, _) = parsed("x.png\ny.png\n");
        assert_eq!(files, [(PathBuf::from("/data/x.png"), None), (PathBuf::from("/data/y.png"), None)]);
    }

    #[test]
    fn the_last_separator_splits_so_paths_may_hold_spaces_and_commas_when_labelled() {
        let (files, _) = parsed("my photos/a b.jpg\t4\nx,y.jpg 5\n");
        assert_eq!(files[0], (PathBuf::from("/data/my photos/a b.jpg"), Some(4)));
        assert_eq!(files[1], (PathBuf::from("/data/x,y.jpg"), Some(5)));
    }

    #[test]
    fn a_list_labelled_inconsistently_names_the_line_and_what_to_do() {
        for (text, line, says) in [
            ("path,label\na.jpg,1\n", 2, "has a number label, but line 1 has a class-name label"),
            ("a.jpg 1\nb.jpg\n", 2, "has no label, but line 1 has a number label"),
            ("a.jpg cat\nb.jpg 2\n", 2, "header line? start it with #"),
            ("a.jpg 1\n,2\n", 2, "has a label but no path"),
        ] {
            let (at, reason) = parse(text, Path::new(".")).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(reason.contains(says), "{text:?}: {reason}");
        }
    }
}
