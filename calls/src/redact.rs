//! What logs may show of personal data. Phone numbers are redacted unless
//! `log.show_pii` is on (a log line keeps a number's last two digits, enough
//! to tell calls apart); what callers and agents say is never logged (it is
//! in the call's record, behind the control API).

/// A phone number or SIP user for a log line.
#[must_use]
pub fn number(n: Option<&str>, show: bool) -> String {
    match n {
        None | Some("") => "-".to_owned(),
        Some(n) if show => n.to_owned(),
        Some(n) => {
            let tail: String = n.chars().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
            if n.chars().count() <= 4 { "***".to_owned() } else { format!("***{tail}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_out_of_logs_unless_allowed() {
        assert_eq!(number(Some("+15550100"), false), "***00");
        assert_eq!(number(Some("1000"), false), "***");
        assert_eq!(number(Some("+15550100"), true), "+15550100");
        assert_eq!(number(None, false), "-");
    }
}
