//! The bAbI question-answering tasks (Weston et al. 2015, "Towards AI-Complete Question
//! Answering"), v1.2 format: `ID text` lines; a question line is `ID question<TAB>answer<TAB>
//! supporting fact IDs`; IDs restart at 1 with each new story. Every reader returns a
//! [`BabiError`] on malformed input, never panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a bAbI file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BabiError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line does not follow the format.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The folder holds no train/test pair for a task.
    #[error(
        "{dir}: no bAbI files for task {task} (expected qa{task}_*_train.txt and qa{task}_*_test.txt)"
    )]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// The task number.
        task: usize,
    },
}

/// One question with the story told before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    /// The story's sentences up to the question, oldest first, as lower-case words.
    pub story: Vec<Vec<String>>,
    /// The question's words.
    pub query: Vec<String>,
    /// The answer (a single token; lists such as `n,w` stay one token).
    pub answer: String,
}

/// A story: the questions asked in it (each with its own prefix of the story).
pub type Story = Vec<Question>;

/// Lower-case words of a sentence, punctuation dropped.
pub fn tokenize(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Parses the text of a bAbI file into stories.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Story>, BabiError> {
    let err = |line: usize, message: String| BabiError::Format {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut stories: Vec<Story> = Vec::new();
    let mut sentences: Vec<Vec<String>> = Vec::new();
    let mut last_id = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (id, rest) = line
            .trim_start()
            .split_once(' ')
            .ok_or_else(|| err(n, "expected `ID text`".into()))?;
        let id: usize = id
            .parse()
            .map_err(|_| err(n, format!("`{id}` is not a line number")))?;
        if id == 1 {
            sentences.clear();
            stories.push(Vec::new());
        } else if id != last_id + 1 || stories.is_empty() {
            return Err(err(
                n,
                format!("line ID {id} does not follow {last_id} (stories start at 1)"),
            ));
        }
        last_id = id;
        if rest.contains('\t') {
            let mut parts = rest.split('\t');
            let q = parts.next().unwrap_or("");
            let answer = parts.next().unwrap_or("").trim();
            if answer.is_empty() || answer.contains(' ') {
                return Err(err(
                    n,
                    "a question line needs `question<TAB>answer` with a one-word answer".into(),
                ));
            }
            let query = tokenize(q);
            if query.is_empty() {
                return Err(err(n, "empty question".into()));
            }
            stories.last_mut().expect("a story").push(Question {
                story: sentences.clone(),
                query,
                answer: answer.to_lowercase(),
            });
        } else {
            let words = tokenize(rest);
            if words.is_empty() {
                return Err(err(n, "empty sentence".into()));
            }
            sentences.push(words);
        }
    }
    stories.retain(|s| !s.is_empty());
    if stories.is_empty() {
        return Err(err(0, "no questions in the file".into()));
    }
    Ok(stories)
}

/// Reads and parses one file.
pub fn read(path: &Path) -> Result<Vec<Story>, BabiError> {
    let text = std::fs::read_to_string(path).map_err(|source| BabiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// The train and test files of task `task` (1-20) in `dir`: `qa{task}_*_train.txt` and
/// `qa{task}_*_test.txt`.
pub fn task_files(dir: &Path, task: usize) -> Result<(PathBuf, PathBuf), BabiError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BabiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let prefix = format!("qa{task}_");
    let mut found: BTreeMap<&str, PathBuf> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) {
            continue;
        }
        for kind in ["train", "test"] {
            if name.ends_with(&format!("_{kind}.txt")) {
                found.insert(kind, e.path());
            }
        }
    }
    match (found.remove("train"), found.remove("test")) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(BabiError::Missing {
            dir: dir.to_path_buf(),
            task,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stories_and_questions() {
        let text = "1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n4 Daniel went back.\n5 Where is Daniel?\thallway\t4\n1 A b.\n2 C?\tn,w\t1\n";
        let s = parse(text, Path::new("x")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].len(), 2);
        assert_eq!(s[0][0].story.len(), 2);
        assert_eq!(s[0][1].story.len(), 3);
        assert_eq!(s[0][0].query, ["where", "is", "mary"]);
        assert_eq!(s[0][0].answer, "bathroom");
        assert_eq!(s[1][0].answer, "n,w");
    }

    #[test]
    fn malformed_lines_are_errors_with_the_line() {
        for (text, want) in [
            ("x y\n", ":1:"),
            ("1 a.\n3 b?\tc\t1\n", ":2:"),
            ("1 a.\n2 b?\t\t1\n", ":2:"),
            ("1 a.\n", "no questions"),
            ("", "no questions"),
            ("2 a.\n", ":1:"),
        ] {
            let e = parse(text, Path::new("f.txt")).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
