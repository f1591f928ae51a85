//! A cursor over a header value with the RFC 3261 lexical helpers: linear
//! white space (already unfolded to spaces), tokens, quoted strings and the
//! separators that may have white space on either side (SWS ";" SWS, ...).

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// `SWS c SWS`: true (and consumed) when `c` is next after optional white space.
    pub(crate) fn eat_sep(&mut self, c: char) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Takes characters while `f` holds.
    pub(crate) fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }

    /// A non-empty token.
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_char);
        (!t.is_empty()).then_some(t)
    }

    /// A quoted string (at `"`), unescaped; `None` if unterminated.
    pub(crate) fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some('"') {
            return None;
        }
        let save = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    self.pos = save;
                    return None;
                }
                Some('"') => return Some(out),
                Some('\\') => out.push(self.bump()?),
                Some(c) => out.push(c),
            }
        }
    }

    /// Everything up to (not including) the first of `stops` outside
    /// quotes and angle brackets.
    pub(crate) fn until_any(&mut self, stops: &[char]) -> &'a str {
        let start = self.pos;
        let (mut quoted, mut angle) = (false, false);
        let mut chars = self.rest().char_indices();
        let mut end = self.s.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if quoted => {
                    chars.next();
                }
                '"' if !angle => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                c if !quoted && !angle && stops.contains(&c) => {
                    end = start + i;
                    break;
                }
                _ => {}
            }
        }
        self.pos = end;
        &self.s[start..end]
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<>`).
pub(crate) fn split_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut c = Cursor::new(value);
    loop {
        out.push(c.until_any(&[',']).trim());
        if c.bump().is_none() {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_allow_white_space_around_them() {
        let mut c = Cursor::new("a  ;  b=c");
        assert_eq!(c.token(), Some("a"));
        assert!(c.eat_sep(';'));
        assert_eq!(c.token(), Some("b"));
        assert!(c.eat_sep('='));
        assert_eq!(c.token(), Some("c"));
        assert!(c.is_empty());
    }

    #[test]
    fn quoted_strings_unescape_and_unterminated_ones_fail() {
        assert_eq!(Cursor::new(r#""J \"R\" \\""x"#).quoted().as_deref(), Some(r#"J "R" \"#));
        assert_eq!(Cursor::new(r#""open"#).quoted(), None);
    }

    #[test]
    fn commas_inside_quotes_and_brackets_do_not_split() {
        assert_eq!(
            split_commas(r#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z@w>"#),
            vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]
        );
    }
}
