//! Several provider accounts (`CALLHOOK_ACCOUNTS_FILE`, a TOML file): each Twilio
//! `AccountSid`, SignalWire project and Plivo auth id with the secrets its
//! callbacks are signed with and the credentials the reconciler asks its API
//! with. A callback is verified with its own account's keys only, and its
//! account is stored on the event and the call. The single-account settings
//! (`CALLHOOK_TWILIO_AUTH_TOKENS`, …) keep working beside it.
//!
//! ```toml
//! [[twilio]]
//! account_sid = "AC…"
//! auth_tokens = ["current", "previous"]   # the first one also signs API requests
//! api_key = "SK…"                        # optional, with api_secret
//! api_secret = "…"
//!
//! [[signalwire]]
//! project_id = "…"
//! signing_keys = ["PSK_…"]
//! space_url = "https://example.signalwire.com"   # optional, with api_token
//! api_token = "PT…"
//!
//! [[plivo]]
//! auth_id = "MA…"
//! auth_tokens = ["…"]
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::providers::Account;
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFile {
    #[serde(default)]
    pub twilio: Vec<TwilioAccount>,
    #[serde(default)]
    pub signalwire: Vec<SignalWireAccount>,
    #[serde(default)]
    pub plivo: Vec<PlivoAccount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_tokens: Vec<Secret>,
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalWireAccount {
    pub project_id: String,
    pub signing_keys: Vec<Secret>,
    pub space_url: Option<String>,
    pub api_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoAccount {
    pub auth_id: String,
    pub auth_tokens: Vec<Secret>,
}

impl AccountsFile {
    /// Reads and checks the file; the error names the file and the mistake.
    pub fn load(path: &Path) -> Result<AccountsFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CALLHOOK_ACCOUNTS_FILE: cannot read {}: {e}", path.display()))?;
        let file: AccountsFile =
            toml::from_str(&text).map_err(|e| format!("CALLHOOK_ACCOUNTS_FILE {}: {}", path.display(), e.message()))?;
        let problems = file.problems();
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(format!("CALLHOOK_ACCOUNTS_FILE {}: {}", path.display(), problems.join("; ")))
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        let mut check = |provider: &str, ids: Vec<(&str, usize)>| {
            let mut seen = BTreeSet::new();
            for (id, tokens) in ids {
                if id.trim().is_empty() || id.trim() != id || id.len() > 128 {
                    problems.push(format!("a {provider} account id must be 1–128 characters without spaces around"));
                } else if !seen.insert(id) {
                    problems.push(format!("{provider} account `{id}` is listed twice"));
                }
                if tokens == 0 {
                    problems.push(format!("{provider} account `{id}` has no signing secret"));
                }
            }
        };
        let filled = |v: &[Secret]| v.iter().filter(|s| !s.expose().trim().is_empty()).count();
        check("twilio", self.twilio.iter().map(|a| (a.account_sid.as_str(), filled(&a.auth_tokens))).collect());
        check("signalwire", self.signalwire.iter().map(|a| (a.project_id.as_str(), filled(&a.signing_keys))).collect());
        check("plivo", self.plivo.iter().map(|a| (a.auth_id.as_str(), filled(&a.auth_tokens))).collect());
        for a in &self.twilio {
            if a.api_key.is_some() != a.api_secret.is_some() {
                problems.push(format!("twilio account `{}`: api_key and api_secret go together", a.account_sid));
            }
        }
        for a in &self.signalwire {
            if a.space_url.is_some() != a.api_token.is_some() {
                problems.push(format!("signalwire project `{}`: space_url and api_token go together", a.project_id));
            }
        }
        problems
    }

    pub fn twilio_accounts(&self) -> Vec<Account> {
        self.twilio.iter().map(|a| account(&a.account_sid, &a.auth_tokens)).collect()
    }

    pub fn signalwire_accounts(&self) -> Vec<Account> {
        self.signalwire.iter().map(|a| account(&a.project_id, &a.signing_keys)).collect()
    }

    pub fn plivo_accounts(&self) -> Vec<Account> {
        self.plivo.iter().map(|a| account(&a.auth_id, &a.auth_tokens)).collect()
    }

    pub fn len(&self) -> usize {
        self.twilio.len() + self.signalwire.len() + self.plivo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn account(id: &str, tokens: &[Secret]) -> Account {
    Account { id: id.to_owned(), tokens: tokens.iter().filter(|s| !s.expose().trim().is_empty()).cloned().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AccountsFile, String> {
        let dir = std::env::temp_dir().join(format!("callhook-accounts-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, text).unwrap();
        let loaded = AccountsFile::load(&dir);
        std::fs::remove_file(&dir).unwrap();
        loaded
    }

    #[test]
    fn a_file_maps_each_account_to_its_keys() {
        let file = parse(
            "[[twilio]]\naccount_sid = \"AC1\"\nauth_tokens = [\"a\", \"b\"]\n\
             [[twilio]]\naccount_sid = \"AC2\"\nauth_tokens = [\"c\"]\napi_key = \"SK2\"\napi_secret = \"s\"\n\
             [[plivo]]\nauth_id = \"MA1\"\nauth_tokens = [\"p\"]\n",
        )
        .unwrap();
        let twilio = file.twilio_accounts();
        assert_eq!(twilio.len(), 2);
        assert_eq!((twilio[0].id.as_str(), twilio[0].tokens.len()), ("AC1", 2));
        assert_eq!(file.plivo_accounts()[0].id, "MA1");
        assert!(!format!("{file:?}").contains("\"a\""), "secrets stay masked");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("[[twilio]]\naccount_sid = \"AC1\"\nauth_tokens = []\n", "has no signing secret"),
            (
                "[[twilio]]\naccount_sid = \"AC1\"\nauth_tokens = [\"a\"]\n[[twilio]]\naccount_sid = \"AC1\"\nauth_tokens = [\"b\"]\n",
                "listed twice",
            ),
            ("[[twilio]]\naccount_sid = \"\"\nauth_tokens = [\"a\"]\n", "1–128 characters"),
            ("[[twilio]]\naccount_sid = \"AC1\"\nauth_tokens = [\"a\"]\napi_key = \"SK\"\n", "go together"),
            ("[[twilio]]\naccount_sid = \"AC1\"\ntokens = [\"a\"]\n", "unknown field"),
            ("[[vonage]]\n", "unknown field"),
            ("not toml", "CALLHOOK_ACCOUNTS_FILE"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
