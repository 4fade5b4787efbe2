//! Knowledge bases for the neural theorem prover: facts and rule templates in the Prolog-like text
//! format of Rocktäschel and Riedel's data (`locatedIn(palau,oceania).`, `3 #1(X, Y) :- #2(X, Z),
//! #2(Z, Y).`), and the symbol table that gives every predicate, constant and rule parameter its
//! row of the embedding matrix.

use std::collections::HashMap;

/// A line of a knowledge-base file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {message}: `{text}`")]
pub struct KbError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// The line as written.
    pub text: String,
}

/// An atom as written: a predicate applied to terms. A term whose name starts with an upper-case
/// letter is a variable; in templates, a predicate `#n` is a parameter to learn.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Atom {
    /// Predicate name.
    pub predicate: String,
    /// Argument names.
    pub args: Vec<String>,
}

impl Atom {
    /// Whether `name` names a variable (starts with an upper-case letter or `_`).
    pub fn is_variable(name: &str) -> bool {
        name.chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c == '_')
    }
}

impl std::fmt::Display for Atom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.predicate, self.args.join(","))
    }
}

/// A rule template: `count` rules of the shape `head :- body`, whose `#n` predicates are learned.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// How many rules of this shape to learn.
    pub count: usize,
    /// Head atom.
    pub head: Atom,
    /// Body atoms (at least one).
    pub body: Vec<Atom>,
}

/// Splits `p(a, b), q(c)` into atoms; `None` when malformed.
fn parse_atoms(s: &str) -> Option<Vec<Atom>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let open = rest.find('(')?;
        let close = open + rest[open..].find(')')?;
        let predicate = rest[..open].trim();
        if predicate.is_empty() || predicate.contains([',', ' ', ')']) {
            return None;
        }
        let args: Vec<String> = rest[open + 1..close]
            .split(',')
            .map(|a| a.trim().to_string())
            .collect();
        if args.iter().any(|a| a.is_empty() || a.contains([' ', '('])) {
            return None;
        }
        out.push(Atom {
            predicate: predicate.to_string(),
            args,
        });
        rest = rest[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            if rest.is_empty() {
                return None;
            }
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Non-empty lines without `%` comments, with their line numbers, each stripped of its final `.`.
fn clauses(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.split('%').next().unwrap_or("").trim();
        if line.is_empty() {
            return None;
        }
        Some((
            i + 1,
            raw,
            line.strip_suffix('.').unwrap_or(line).trim_end(),
        ))
    })
}

/// Reads ground facts, one a line (`locatedIn(palau,oceania).`; `%` starts a comment).
///
/// ```
/// use nabla::nn::ntp::parse_facts;
/// let facts = parse_facts("locatedIn(palau,oceania).\nneighborOf(france, spain).\n").unwrap();
/// assert_eq!(facts[1].args, ["france", "spain"]);
/// assert!(parse_facts("locatedIn(X,oceania).").is_err()); // a variable: not a fact
/// ```
pub fn parse_facts(text: &str) -> Result<Vec<Atom>, KbError> {
    let mut out = Vec::new();
    for (line, raw, body) in clauses(text) {
        let err = |message: &str| KbError {
            line,
            message: message.into(),
            text: raw.trim().into(),
        };
        let atoms = parse_atoms(body).ok_or_else(|| err("expected one atom `p(a,b).`"))?;
        if atoms.len() != 1 {
            return Err(err("expected one atom `p(a,b).`"));
        }
        let a = atoms.into_iter().next().expect("one atom");
        if Atom::is_variable(&a.predicate) || a.args.iter().any(|t| Atom::is_variable(t)) {
            return Err(err("a fact must be ground (no variables)"));
        }
        out.push(a);
    }
    Ok(out)
}

/// Reads rule templates, one a line: `count  head :- body.`, e.g.
/// `3  #1(X, Y) :- #2(X, Z), #2(Z, Y).` Every variable of the head must occur in the body.
///
/// ```
/// use nabla::nn::ntp::parse_templates;
/// let t = parse_templates("2 #1(X, Y) :- #2(X, Z), #3(Z, Y).").unwrap();
/// assert_eq!((t[0].count, t[0].body.len()), (2, 2));
/// ```
pub fn parse_templates(text: &str) -> Result<Vec<Template>, KbError> {
    let mut out = Vec::new();
    for (line, raw, body) in clauses(text) {
        let err = |message: &str| KbError {
            line,
            message: message.into(),
            text: raw.trim().into(),
        };
        let (count, rule) = body
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("expected `count head :- body.`"))?;
        let count: usize = count
            .parse()
            .map_err(|_| err("the count must be a positive integer"))?;
        if count == 0 {
            return Err(err("the count must be a positive integer"));
        }
        let (head, body) = rule
            .split_once(":-")
            .ok_or_else(|| err("expected `head :- body`"))?;
        let head = parse_atoms(head).filter(|h| h.len() == 1);
        let body = parse_atoms(body).filter(|b| !b.is_empty());
        let (Some(head), Some(body)) = (head, body) else {
            return Err(err("malformed atom"));
        };
        let head = head.into_iter().next().expect("one atom");
        for a in &body {
            let vars: Vec<&String> = a.args.iter().filter(|v| Atom::is_variable(v)).collect();
            if (1..vars.len()).any(|i| vars[..i].contains(&vars[i])) {
                return Err(err("a variable may occur only once in a body atom"));
            }
        }
        for v in head.args.iter().filter(|a| Atom::is_variable(a)) {
            if !body.iter().any(|b| b.args.contains(v)) {
                return Err(err(&format!(
                    "head variable {v} does not occur in the body"
                )));
            }
        }
        out.push(Template { count, head, body });
    }
    Ok(out)
}

/// What a row of the embedding matrix stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    /// A predicate of the knowledge base.
    Predicate,
    /// A constant of the knowledge base.
    Constant,
    /// A learned predicate of a rule (a template's `#n` in one rule instance).
    RuleParameter,
}

/// Symbols (each a row of the embedding matrix) with their names and kinds.
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    names: Vec<String>,
    kinds: Vec<SymbolKind>,
    index: HashMap<(String, bool), usize>,
}

impl Vocab {
    /// The symbol `name` of `kind`, added if new. Predicates and constants of the same name are
    /// different symbols; rule parameters are always new.
    pub fn intern(&mut self, name: &str, kind: SymbolKind) -> usize {
        let key = (name.to_string(), kind == SymbolKind::Predicate);
        if kind != SymbolKind::RuleParameter {
            if let Some(&i) = self.index.get(&key) {
                return i;
            }
            self.index.insert(key, self.names.len());
        }
        self.names.push(name.to_string());
        self.kinds.push(kind);
        self.names.len() - 1
    }

    /// The existing symbol `name` of `kind` (a predicate or a constant).
    pub fn get(&self, name: &str, kind: SymbolKind) -> Option<usize> {
        self.index
            .get(&(name.to_string(), kind == SymbolKind::Predicate))
            .copied()
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Name of symbol `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Kind of symbol `i`.
    pub fn kind(&self, i: usize) -> SymbolKind {
        self.kinds[i]
    }

    /// The symbols of `kind`.
    pub fn of_kind(&self, kind: SymbolKind) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.kinds[i] == kind).collect()
    }
}

/// A term of a rule: a symbol, or a variable numbered within its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Term {
    /// A symbol (row of the embedding matrix).
    Sym(usize),
    /// A variable of the rule.
    Var(usize),
}

/// An atom of a rule: predicate symbol and terms.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleAtom {
    /// Predicate symbol (a rule parameter or a real predicate).
    pub predicate: usize,
    /// Terms.
    pub args: Vec<Term>,
}

/// One rule instance of a template, over symbols.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Head.
    pub head: RuleAtom,
    /// Body.
    pub body: Vec<RuleAtom>,
    /// Number of distinct variables.
    pub num_vars: usize,
    /// Variable names, by number (for printing).
    pub var_names: Vec<String>,
}

impl Rule {
    /// Instantiates `t` once: each `#n` becomes a fresh [`SymbolKind::RuleParameter`] named
    /// `{prefix}#n`; other predicate and constant names are interned as they are.
    pub fn from_template(t: &Template, prefix: &str, vocab: &mut Vocab) -> Rule {
        let mut params: HashMap<String, usize> = HashMap::new();
        let mut vars: Vec<String> = Vec::new();
        let mut atom = |a: &Atom, vocab: &mut Vocab| {
            let predicate = if a.predicate.starts_with('#') {
                *params.entry(a.predicate.clone()).or_insert_with(|| {
                    vocab.intern(
                        &format!("{prefix}{}", a.predicate),
                        SymbolKind::RuleParameter,
                    )
                })
            } else {
                vocab.intern(&a.predicate, SymbolKind::Predicate)
            };
            let args = a
                .args
                .iter()
                .map(|n| {
                    if Atom::is_variable(n) {
                        let i = vars.iter().position(|v| v == n).unwrap_or_else(|| {
                            vars.push(n.clone());
                            vars.len() - 1
                        });
                        Term::Var(i)
                    } else {
                        Term::Sym(vocab.intern(n, SymbolKind::Constant))
                    }
                })
                .collect();
            RuleAtom { predicate, args }
        };
        let head = atom(&t.head, vocab);
        let body = t.body.iter().map(|b| atom(b, vocab)).collect();
        Rule {
            head,
            body,
            num_vars: vars.len(),
            var_names: vars,
        }
    }
}
