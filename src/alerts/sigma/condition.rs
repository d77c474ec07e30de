//! Sigma's condition language, turned into SQL over the selections'
//! predicates.

/// Sigma's condition language over named selections: `and`, `or`, `not`,
/// parentheses, `1 of PATTERN`, `all of PATTERN`, `them`.
pub(super) struct Condition<'a> {
    tokens: Vec<String>,
    at: usize,
    selections: &'a [(String, String)],
}

impl<'a> Condition<'a> {
    pub(super) fn new(text: &str, selections: &'a [(String, String)]) -> Self {
        let tokens = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Self {
            tokens,
            at: 0,
            selections,
        }
    }

    pub(super) fn parse(mut self) -> std::result::Result<String, String> {
        let e = self.or()?;
        match self.tokens.get(self.at) {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} in the condition")),
        }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> std::result::Result<String, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some("or") {
            self.next();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" or "))
        })
    }

    fn and(&mut self) -> std::result::Result<String, String> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some("and") {
            self.next();
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" and "))
        })
    }

    fn not(&mut self) -> std::result::Result<String, String> {
        if self.peek() == Some("not") {
            self.next();
            return Ok(format!("(not coalesce({}, false))", self.not()?));
        }
        self.atom()
    }

    fn atom(&mut self) -> std::result::Result<String, String> {
        let t = self.next().ok_or("the condition ends too early")?;
        match t.as_str() {
            "(" => {
                let e = self.or()?;
                match self.next().as_deref() {
                    Some(")") => Ok(e),
                    _ => Err("a ( in the condition is not closed".into()),
                }
            }
            "1" | "all" | "any" if self.peek() == Some("of") => {
                self.next();
                let pattern = self.next().ok_or("`of` needs a name or pattern")?;
                let picked: Vec<&String> = self
                    .selections
                    .iter()
                    .filter(|(n, _)| pattern == "them" || glob(&pattern, n))
                    .map(|(_, sql)| sql)
                    .collect();
                if picked.is_empty() {
                    return Err(format!("no selection matches {pattern:?}"));
                }
                let join = if t == "all" { " and " } else { " or " };
                Ok(format!(
                    "({})",
                    picked
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(join)
                ))
            }
            name => self
                .selections
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, sql)| sql.clone())
                .ok_or_else(|| format!("the condition names {name:?}, which is no selection")),
        }
    }
}

/// `selection*` style name patterns.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}
