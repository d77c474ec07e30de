//! The Insights query: commands separated by `|`, parsed into a small AST.

use super::InsightsError;
use super::lexer::{Tok, Token};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field as written (`user.username`, `@timestamp`, backticked text).
    Field(String),
    Str(String),
    Num(f64),
    /// Milliseconds.
    Period(f64, String),
    Regex(String),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>, bool),
    /// `like` / `=~`: a substring (string) or a regex; negated.
    Like(Box<Expr>, Box<Expr>, bool),
    Call(String, Vec<Expr>, usize),
    Star,
}

/// An output item: the expression, its name (`as NAME`, else its text).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub expr: Expr,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Fields(Vec<Item>),
    Display(Vec<Item>),
    Filter(Expr),
    Stats {
        aggs: Vec<Item>,
        by: Vec<Item>,
    },
    Sort(Vec<(Expr, bool)>),
    Limit(u64),
    Dedup(Vec<Expr>),
    Parse {
        field: Expr,
        pattern: Expr,
        names: Vec<String>,
    },
    Unnest {
        field: Expr,
        name: String,
    },
}

/// Commands that need CloudWatch's own features.
const UNSUPPORTED: &[&str] = &[
    "pattern",
    "diff",
    "anomaly",
    "unmask",
    "lookup",
    "join",
    "source",
    "filterindex",
];

pub struct Parser<'q> {
    query: &'q str,
    toks: Vec<Token>,
    pos: usize,
}

impl<'q> Parser<'q> {
    pub fn new(query: &'q str, toks: Vec<Token>) -> Self {
        Self {
            query,
            toks,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.query.len(), |t| t.at)
    }

    fn err(&self, msg: impl Into<String>) -> InsightsError {
        InsightsError::at(self.query, self.at(), msg)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let yes = matches!(self.peek(), Some(Tok::Op(o)) if *o == op);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_op(&mut self, op: &str) -> Result<(), InsightsError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.err(format!("expected {op:?}")))
        }
    }

    pub fn commands(&mut self) -> Result<Vec<Command>, InsightsError> {
        let mut out = Vec::new();
        loop {
            if self.peek().is_none() {
                if out.is_empty() {
                    return Err(self.err("empty query"));
                }
                return Ok(out);
            }
            out.push(self.command()?);
            if self.peek().is_some() {
                self.expect_op("|")?;
            }
        }
    }

    fn command(&mut self) -> Result<Command, InsightsError> {
        let at = self.at();
        let Some(Tok::Name(word)) = self.peek().cloned() else {
            return Err(self.err("expected a command (fields, filter, stats, sort, limit, ...)"));
        };
        self.pos += 1;
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "fields" => Command::Fields(self.items()?),
            "display" => Command::Display(self.items()?),
            "filter" => Command::Filter(self.expr()?),
            "stats" => {
                let aggs = self.items()?;
                let by = if self.eat_word("by") {
                    self.items()?
                } else {
                    Vec::new()
                };
                Command::Stats { aggs, by }
            }
            "sort" => {
                let mut keys = Vec::new();
                loop {
                    let e = self.expr()?;
                    let desc = if self.eat_word("desc") {
                        true
                    } else {
                        self.eat_word("asc");
                        false
                    };
                    keys.push((e, desc));
                    if !self.eat_op(",") {
                        break;
                    }
                }
                Command::Sort(keys)
            }
            "limit" => match self.peek() {
                Some(Tok::Num(n)) if *n >= 1.0 && n.fract() == 0.0 => {
                    let n = *n as u64;
                    self.pos += 1;
                    Command::Limit(n)
                }
                _ => return Err(self.err("limit takes a whole number")),
            },
            "dedup" => {
                let mut keys = vec![self.expr()?];
                while self.eat_op(",") {
                    keys.push(self.expr()?);
                }
                Command::Dedup(keys)
            }
            "parse" => {
                let field = self.primary()?;
                let pattern = match self.peek().cloned() {
                    Some(Tok::Str(s)) => Expr::Str(s),
                    Some(Tok::Regex(r)) => Expr::Regex(r),
                    _ => return Err(self.err("parse: expected a \"glob * pattern\" or a /regex/")),
                };
                self.pos += 1;
                let mut names = Vec::new();
                if self.eat_word("as") {
                    loop {
                        names.push(self.name()?);
                        if !self.eat_op(",") {
                            break;
                        }
                    }
                }
                Command::Parse {
                    field,
                    pattern,
                    names,
                }
            }
            "unnest" => {
                let field = self.primary()?;
                let name = if self.eat_word("into") || self.eat_word("as") {
                    self.name()?
                } else {
                    match &field {
                        Expr::Field(f) => f.clone(),
                        _ => {
                            return Err(
                                self.err("unnest: name the result (unnest FIELD into NAME)")
                            );
                        }
                    }
                };
                Command::Unnest { field, name }
            }
            w if UNSUPPORTED.contains(&w) => {
                return Err(InsightsError::at(
                    self.query,
                    at,
                    format!(
                        "`{word}` needs CloudWatch Logs Insights itself (machine learning or account data); eksaudit cannot run it locally"
                    ),
                ));
            }
            _ => {
                return Err(InsightsError::at(
                    self.query,
                    at,
                    format!("unknown command `{word}`"),
                ));
            }
        })
    }

    fn name(&mut self) -> Result<String, InsightsError> {
        match self.peek().cloned() {
            Some(Tok::Name(n)) | Some(Tok::Quoted(n)) => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.err("expected a name")),
        }
    }

    fn items(&mut self) -> Result<Vec<Item>, InsightsError> {
        let mut out = Vec::new();
        loop {
            let start = self.at();
            let expr = self.expr()?;
            let end = self.toks.get(self.pos).map_or(self.query.len(), |t| t.at);
            let name = if self.eat_word("as") {
                self.name()?
            } else {
                match &expr {
                    Expr::Field(f) => f.clone(),
                    _ => self.query[start..end].trim().to_string(),
                }
            };
            out.push(Item { expr, name });
            if !self.eat_op(",") {
                return Ok(out);
            }
        }
    }

    pub fn expr(&mut self) -> Result<Expr, InsightsError> {
        let mut l = self.and()?;
        while self.eat_word("or") {
            l = Expr::Binary("or", Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, InsightsError> {
        let mut l = self.not()?;
        while self.eat_word("and") {
            l = Expr::Binary("and", Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, InsightsError> {
        if self.eat_word("not") {
            return Ok(Expr::Unary("not", Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, InsightsError> {
        let l = self.additive()?;
        for op in ["==", "!=", "<=", ">=", "=", "<", ">"] {
            if self.eat_op(op) {
                let sql = match op {
                    "==" | "=" => "=",
                    other => match other {
                        "!=" => "!=",
                        "<=" => "<=",
                        ">=" => ">=",
                        "<" => "<",
                        _ => ">",
                    },
                };
                return Ok(Expr::Binary(sql, Box::new(l), Box::new(self.additive()?)));
            }
        }
        if self.eat_op("=~") {
            return Ok(Expr::Like(Box::new(l), Box::new(self.additive()?), false));
        }
        let negated = self.is_word("not")
            && matches!(self.toks.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Name(n)) if n.eq_ignore_ascii_case("in") || n.eq_ignore_ascii_case("like"));
        if negated {
            self.pos += 1;
        }
        if self.eat_word("in") {
            self.expect_op("[")?;
            let mut list = Vec::new();
            if !self.eat_op("]") {
                loop {
                    list.push(self.additive()?);
                    if self.eat_op("]") {
                        break;
                    }
                    self.expect_op(",")?;
                }
            }
            return Ok(Expr::In(Box::new(l), list, negated));
        }
        if self.eat_word("like") {
            return Ok(Expr::Like(Box::new(l), Box::new(self.additive()?), negated));
        }
        if negated {
            return Err(self.err("expected in or like after not"));
        }
        Ok(l)
    }

    fn additive(&mut self) -> Result<Expr, InsightsError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = if self.eat_op("+") {
                "+"
            } else if self.eat_op("-") {
                "-"
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, InsightsError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                "*"
            } else if self.eat_op("/") {
                "/"
            } else if self.eat_op("%") {
                "%"
            } else if self.eat_op("^") {
                "^"
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, InsightsError> {
        if self.eat_op("-") {
            return Ok(Expr::Unary("-", Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, InsightsError> {
        let at = self.at();
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err("the query ends where a value was expected"));
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Str(s) => Expr::Str(s),
            Tok::Num(n) => Expr::Num(n),
            Tok::Period(n, unit) => Expr::Period(n, unit),
            Tok::Regex(r) => Expr::Regex(r),
            Tok::Quoted(q) => Expr::Field(q),
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect_op(")")?;
                e
            }
            Tok::Op("*") => Expr::Star,
            Tok::Name(n) if self.eat_op("(") => {
                let mut args = Vec::new();
                if !self.eat_op(")") {
                    loop {
                        args.push(self.expr()?);
                        if self.eat_op(")") {
                            break;
                        }
                        self.expect_op(",")?;
                    }
                }
                Expr::Call(n, args, at)
            }
            Tok::Name(n) => Expr::Field(n),
            Tok::Op(op) => {
                self.pos -= 1;
                return Err(self.err(format!("unexpected {op:?}")));
            }
        })
    }
}
